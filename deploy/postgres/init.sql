-- Run once by the postgres image on its first start (docker-compose.yml mounts it into
-- /docker-entrypoint-initdb.d/). One database per service: each service owns its tables and its
-- sqlx migration history, and a DATABASE_URL names nothing but the service's own database.
-- lab/tests/compose.rs checks that these are exactly the databases the services' DATABASE_URLs name.
CREATE DATABASE order_service;
CREATE DATABASE payment_service;
CREATE DATABASE inventory_service;
