-- A pending charge is a claim held by one request. If that request is cancelled or its process
-- dies, the row would stay 'pending' forever; recording who holds the claim and since when lets a
-- retry take it over once the lease (CHARGE_PENDING_LEASE_MS) has run out.
-- claimed_at_ms: when the current holder claimed (or took over) the row, epoch ms.
-- claim_id: a random id per holder, so only the current holder can complete the charge.
ALTER TABLE charges ADD COLUMN claimed_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN claim_id TEXT NOT NULL DEFAULT '';
UPDATE charges SET claimed_at_ms = created_at_ms;
