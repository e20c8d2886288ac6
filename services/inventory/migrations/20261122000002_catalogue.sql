-- The catalogue order-service sells (same SKUs as its products table), with stock. LAPTOP-1 has
-- plenty so load tests never run out; SOLDOUT-1 has none (an honest 409 out_of_stock).
INSERT INTO products (sku, name) VALUES
    ('LAPTOP-1', 'Laptop 14"'),
    ('MOUSE-1', 'Wireless mouse'),
    ('KEYBOARD-1', 'Mechanical keyboard'),
    ('MONITOR-1', '27" monitor'),
    ('HEADPHONES-1', 'Noise-cancelling headphones'),
    ('CABLE-1', 'USB-C cable'),
    ('SOLDOUT-1', 'Sold-out limited edition');

INSERT INTO stock (sku, available, reserved, updated_at_ms) VALUES
    ('LAPTOP-1', 100000000, 0, 0),
    ('MOUSE-1', 1000000, 0, 0),
    ('KEYBOARD-1', 1000000, 0, 0),
    ('MONITOR-1', 1000000, 0, 0),
    ('HEADPHONES-1', 1000000, 0, 0),
    ('CABLE-1', 1000000, 0, 0),
    ('SOLDOUT-1', 0, 0, 0);
