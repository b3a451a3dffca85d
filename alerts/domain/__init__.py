"""Plain typed data and pure logic: no I/O, no database, no framework imports."""
