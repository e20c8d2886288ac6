-- A product inventory-service keeps at zero stock: ordering it exercises the real 409 out_of_stock
-- path and the compensation (refund) without any scenario flag.
INSERT INTO products (sku, name, price_cents) VALUES ('SOLDOUT-1', 'Sold-out limited edition', 49900);
