"""The inventory's schema, as a list of migrations, in each backend's dialect.

Each entry moves the schema one version on; the backend keeps how far a
database has come (SQLite: ``PRAGMA user_version``; PostgreSQL: a row of
``inventory_state``). Append, never edit: databases in the field have run them.
Step N is the same change in both lists: the same tables, columns and rules,
in each one's types (PostgreSQL: BIGINT and DOUBLE PRECISION for SQLite's
INTEGER and REAL, an identity column for AUTOINCREMENT, a CHECK changed in
place where SQLite makes the table again).
"""

SQLITE: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        mac TEXT PRIMARY KEY,
        hostname TEXT NOT NULL UNIQUE,
        ip TEXT NOT NULL UNIQUE,
        image TEXT,
        lun_path TEXT,
        lun_size INTEGER NOT NULL,
        initiator_iqn TEXT NOT NULL UNIQUE,
        target_iqn TEXT NOT NULL UNIQUE,
        chap_user TEXT NOT NULL UNIQUE,
        chap_secret TEXT NOT NULL,
        mutual_secret TEXT NOT NULL,
        boot_method TEXT NOT NULL DEFAULT 'initramfs',
        provisioned INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        last_seen REAL,
        last_stage TEXT,
        last_stage_at REAL
    );
    CREATE TABLE unknown_machines (
        mac TEXT PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        requests INTEGER NOT NULL DEFAULT 1,
        vendor_class TEXT,
        arch INTEGER
    );
    """,
    # extra LUNs (2, 3, ...) on a client's target: files or block devices
    """
    CREATE TABLE luns (
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        lun INTEGER NOT NULL CHECK (lun >= 2),
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'device')),
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (mac, lun)
    );
    """,
    # DHCP leases of machines without a fixed address, and addresses clients declined
    # (RFC 2131 section 3.1 step 5: in use by someone else) with the time they are kept out.
    """
    CREATE TABLE dhcp_leases (
        mac TEXT PRIMARY KEY,
        ip TEXT NOT NULL UNIQUE,
        expires REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE dhcp_declined (
        ip TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        until REAL NOT NULL
    );
    """,
    # boot windows and their single-use tokens (netboot.inventory.windows)
    """
    CREATE TABLE boot_windows (
        boot_id INTEGER PRIMARY KEY AUTOINCREMENT,
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        opened REAL NOT NULL,
        expires REAL NOT NULL,
        ready INTEGER NOT NULL DEFAULT 0,
        closed REAL
    );
    CREATE INDEX boot_windows_by_mac ON boot_windows (mac, boot_id);
    CREATE TABLE boot_tokens (
        token TEXT PRIMARY KEY,
        boot_id INTEGER NOT NULL REFERENCES boot_windows(boot_id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        used_at REAL,
        used_by TEXT,
        UNIQUE (boot_id, file)
    );
    """,
    # extra LUNs may be RBD images too (kind 'rbd', path rbd:POOL/IMAGE): SQLite changes a
    # CHECK only by making the table again
    """
    CREATE TABLE luns_new (
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        lun INTEGER NOT NULL CHECK (lun >= 2),
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'device', 'rbd')),
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (mac, lun)
    );
    INSERT INTO luns_new SELECT mac, lun, path, kind, size, created FROM luns;
    DROP TABLE luns;
    ALTER TABLE luns_new RENAME TO luns;
    """,
    # the servers sharing the inventory (netboot.inventory.servers)
    """
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        range_start TEXT NOT NULL,
        range_end TEXT NOT NULL,
        portal TEXT NOT NULL CHECK (portal IN ('holder', 'standby', 'fenced', 'none')),
        started REAL NOT NULL,
        seen REAL NOT NULL,
        stopped REAL
    );
    """,
    # a window is ready once every server with a tgtd prepared it; one of them rotates
    """
    ALTER TABLE boot_windows ADD COLUMN rotated INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE window_preparations (
        boot_id INTEGER NOT NULL REFERENCES boot_windows(boot_id) ON DELETE CASCADE,
        server TEXT NOT NULL,
        PRIMARY KEY (boot_id, server)
    );
    """,
    """
    CREATE TABLE stage_log (
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX stage_log_by_mac ON stage_log (mac, at);
    """,
    # SAN hosts (netboot.inventory.hosts): servers that boot from their own disks and use
    # LUNs on a target of their own, numbered from 1 (no root); and the one account the
    # target answers SendTargets discovery with in mutual CHAP (a single row, id 1)
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        initiator_iqn TEXT NOT NULL UNIQUE,
        target_iqn TEXT NOT NULL UNIQUE,
        chap_user TEXT NOT NULL UNIQUE,
        chap_secret TEXT NOT NULL,
        mutual_secret TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE host_luns (
        host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
        lun INTEGER NOT NULL CHECK (lun >= 1),
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'device', 'rbd')),
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (host, lun)
    );
    CREATE TABLE discovery_mutual (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account TEXT NOT NULL,
        secret TEXT NOT NULL
    );
    """,
    # a reimaged full-clone client keeps its previous root (and the image version it came
    # from) until `client reimage --undo` or `--purge`; the root being made is recorded
    # first, so a killed reimage leaves nothing behind (netboot.provisioning.reimage);
    # and the image version each client's last boot mounted (set at its stage root)
    """
    ALTER TABLE clients ADD COLUMN previous_image TEXT;
    ALTER TABLE clients ADD COLUMN previous_lun_path TEXT;
    ALTER TABLE clients ADD COLUMN next_lun_path TEXT;
    ALTER TABLE clients ADD COLUMN booted_image TEXT;
    """,
    # each client's BMC (netboot.inventory.bmcs), its password kept as the CHAP secrets are;
    # the kind is checked by netboot (a new kind needs no new table)
    """
    CREATE TABLE bmcs (
        mac TEXT PRIMARY KEY REFERENCES clients(mac) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # a Redfish BMC (netboot.inventory.bmcs): its system's path ('' for the BMC's only one),
    # the CA certificate its HTTPS certificate is checked with (NULL: the system's CAs), or
    # that it is not checked (--bmc-insecure)
    """
    ALTER TABLE bmcs ADD COLUMN system_path TEXT NOT NULL DEFAULT '';
    ALTER TABLE bmcs ADD COLUMN ca_pem TEXT;
    ALTER TABLE bmcs ADD COLUMN insecure INTEGER NOT NULL DEFAULT 0 CHECK (insecure IN (0, 1));
    """,
    # moves when a client is added or removed or its address or hostname changes (what DHCP
    # answers from), not at every stage written: DHCP's client directory re-reads the clients
    # only then (netboot.dhcp.directory)
    """
    CREATE TABLE directory_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO directory_version (id, version) VALUES (1, 0);
    """,
    # the last roll-out (netboot.rollout.record) as its JSON record: in the inventory, so
    # any server of a shared inventory can show or undo it
    """
    CREATE TABLE last_rollout (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        record TEXT NOT NULL
    );
    """,
)

POSTGRESQL: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        mac TEXT PRIMARY KEY,
        hostname TEXT NOT NULL UNIQUE,
        ip TEXT NOT NULL UNIQUE,
        image TEXT,
        lun_path TEXT,
        lun_size BIGINT NOT NULL,
        initiator_iqn TEXT NOT NULL UNIQUE,
        target_iqn TEXT NOT NULL UNIQUE,
        chap_user TEXT NOT NULL UNIQUE,
        chap_secret TEXT NOT NULL,
        mutual_secret TEXT NOT NULL,
        boot_method TEXT NOT NULL DEFAULT 'initramfs',
        provisioned BIGINT NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION,
        last_stage TEXT,
        last_stage_at DOUBLE PRECISION
    );
    CREATE TABLE unknown_machines (
        mac TEXT PRIMARY KEY,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        requests BIGINT NOT NULL DEFAULT 1,
        vendor_class TEXT,
        arch BIGINT
    );
    """,
    """
    CREATE TABLE luns (
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        lun BIGINT NOT NULL CHECK (lun >= 2),
        path TEXT NOT NULL,
        kind TEXT NOT NULL CONSTRAINT luns_kind CHECK (kind IN ('file', 'device')),
        size BIGINT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (mac, lun)
    );
    """,
    """
    CREATE TABLE dhcp_leases (
        mac TEXT PRIMARY KEY,
        ip TEXT NOT NULL UNIQUE,
        expires DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE dhcp_declined (
        ip TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL
    );
    """,
    """
    CREATE TABLE boot_windows (
        boot_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        opened DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL,
        ready BIGINT NOT NULL DEFAULT 0,
        closed DOUBLE PRECISION
    );
    CREATE INDEX boot_windows_by_mac ON boot_windows (mac, boot_id);
    CREATE TABLE boot_tokens (
        token TEXT PRIMARY KEY,
        boot_id BIGINT NOT NULL REFERENCES boot_windows(boot_id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        used_at DOUBLE PRECISION,
        used_by TEXT,
        UNIQUE (boot_id, file)
    );
    """,
    """
    ALTER TABLE luns DROP CONSTRAINT luns_kind;
    ALTER TABLE luns ADD CONSTRAINT luns_kind CHECK (kind IN ('file', 'device', 'rbd'));
    """,
    """
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        range_start TEXT NOT NULL,
        range_end TEXT NOT NULL,
        portal TEXT NOT NULL CHECK (portal IN ('holder', 'standby', 'fenced', 'none')),
        started DOUBLE PRECISION NOT NULL,
        seen DOUBLE PRECISION NOT NULL,
        stopped DOUBLE PRECISION
    );
    """,
    """
    ALTER TABLE boot_windows ADD COLUMN rotated BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE window_preparations (
        boot_id BIGINT NOT NULL REFERENCES boot_windows(boot_id) ON DELETE CASCADE,
        server TEXT NOT NULL,
        PRIMARY KEY (boot_id, server)
    );
    """,
    """
    CREATE TABLE stage_log (
        mac TEXT NOT NULL REFERENCES clients(mac) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX stage_log_by_mac ON stage_log (mac, at);
    """,
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        initiator_iqn TEXT NOT NULL UNIQUE,
        target_iqn TEXT NOT NULL UNIQUE,
        chap_user TEXT NOT NULL UNIQUE,
        chap_secret TEXT NOT NULL,
        mutual_secret TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE host_luns (
        host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
        lun BIGINT NOT NULL CHECK (lun >= 1),
        path TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'device', 'rbd')),
        size BIGINT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (host, lun)
    );
    CREATE TABLE discovery_mutual (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        account TEXT NOT NULL,
        secret TEXT NOT NULL
    );
    """,
    # a reimaged full-clone client keeps its previous root (and the image version it came
    # from) until `client reimage --undo` or `--purge`; the root being made is recorded
    # first, so a killed reimage leaves nothing behind (netboot.provisioning.reimage);
    # and the image version each client's last boot mounted (set at its stage root)
    """
    ALTER TABLE clients ADD COLUMN previous_image TEXT;
    ALTER TABLE clients ADD COLUMN previous_lun_path TEXT;
    ALTER TABLE clients ADD COLUMN next_lun_path TEXT;
    ALTER TABLE clients ADD COLUMN booted_image TEXT;
    """,
    """
    CREATE TABLE bmcs (
        mac TEXT PRIMARY KEY REFERENCES clients(mac) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        port BIGINT NOT NULL CHECK (port BETWEEN 1 AND 65535),
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    );
    """,
    # a Redfish BMC (netboot.inventory.bmcs): its system's path ('' for the BMC's only one),
    # the CA certificate its HTTPS certificate is checked with (NULL: the system's CAs), or
    # that it is not checked (--bmc-insecure)
    """
    ALTER TABLE bmcs ADD COLUMN system_path TEXT NOT NULL DEFAULT '';
    ALTER TABLE bmcs ADD COLUMN ca_pem TEXT;
    ALTER TABLE bmcs ADD COLUMN insecure BIGINT NOT NULL DEFAULT 0 CHECK (insecure IN (0, 1));
    """,
    """
    CREATE TABLE directory_version (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    );
    INSERT INTO directory_version (id, version) VALUES (1, 0);
    """,
    """
    CREATE TABLE last_rollout (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        record TEXT NOT NULL
    );
    """,
)
