using System.Net;
using Microsoft.Data.Sqlite;

namespace Hypercore.Networking;

/// <summary>One guest address leased to one interface of one VM.</summary>
public sealed record AddressLease(string Address, string Uid, string DeviceId, string Mac, string Hostname);

/// <summary>One host port forwarded to a guest address and port.</summary>
public sealed record ForwardEntry(string Protocol, int HostPort, string Uid, string Address, int GuestPort)
{
    public override string ToString() => $"{Protocol} {HostPort} -> {Address}:{GuestPort}";
}

/// <summary>
/// The node's IPAM: guest addresses on the managed bridge and the host ports forwarded to them, in a SQLite file of
/// their own (&lt;state-dir&gt;/network/leases.db). SQLite rather than a flat file because the constraints that matter are
/// the database's, not ours: an address is the primary key (never leased twice, even by two daemons racing), a
/// (protocol, host port) too, and a lease is committed with WAL and synchronous=FULL before the VM starts, so a
/// kill -9 loses nothing that was acknowledged. It is a file of its own, not a table in hypercore.db, because the
/// desired-state store may be Kubernetes while leases are always node-local.
/// Addresses are handed out round-robin from a cursor, so one just released is the last to be reused.
/// </summary>
public sealed class AddressLeases : IDisposable
{
    private readonly string _connectionString;
    private readonly IPAddress _gateway;
    private readonly uint _first;
    private readonly uint _last;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public AddressLeases(string databasePath, IPAddress gateway, IPNetwork network)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(databasePath)!);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString();
        _gateway = gateway;
        var net = Ipv4.ToUInt32(network.BaseAddress);
        var size = 1u << (32 - network.PrefixLength);
        _first = net + 1;
        _last = net + size - 2; // not the broadcast address
        Network = network;
        using var c = Open();
        Execute(c, """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS leases (
                address TEXT PRIMARY KEY, uid TEXT NOT NULL, device_id TEXT NOT NULL, mac TEXT NOT NULL UNIQUE,
                hostname TEXT NOT NULL, UNIQUE (uid, device_id));
            CREATE TABLE IF NOT EXISTS forwards (
                protocol TEXT NOT NULL, host_port INTEGER NOT NULL, uid TEXT NOT NULL, address TEXT NOT NULL,
                guest_port INTEGER NOT NULL, PRIMARY KEY (protocol, host_port));
            CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 0), next INTEGER NOT NULL);
            """);
    }

    public IPNetwork Network { get; }

    public void Dispose() => _gate.Dispose();

    public int PrefixLength => Network.PrefixLength;

    /// <summary>
    /// The interface's lease: the one it already has (a restart, or a daemon that died after leasing), else
    /// <paramref name="requested"/> when given and free, else the next free address.
    /// </summary>
    public async Task<AddressLease> LeaseAsync(string uid, string deviceId, string mac, string hostname, string? requested, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            using var c = Open();
            using var tx = c.BeginTransaction(deferred: false); // BEGIN IMMEDIATE: one writer across processes too
            var existing = Query(c, tx, "SELECT address, uid, device_id, mac, hostname FROM leases WHERE uid = $a AND device_id = $b", uid, deviceId).FirstOrDefault();
            if (existing is not null && (requested is null || requested == existing.Address))
            {
                if (existing.Mac != mac || existing.Hostname != hostname)
                {
                    CheckMacFree(c, tx, mac, uid, deviceId);
                    Execute(c, tx, "UPDATE leases SET mac = $a, hostname = $b WHERE uid = $c AND device_id = $d", mac, hostname, uid, deviceId);
                    existing = existing with { Mac = mac, Hostname = hostname };
                }

                tx.Commit();
                return existing;
            }

            if (existing is not null)
            {
                Execute(c, tx, "DELETE FROM leases WHERE uid = $a AND device_id = $b", uid, deviceId); // the spec now asks for another address
            }

            CheckMacFree(c, tx, mac, uid, deviceId);
            var taken = Query(c, tx, "SELECT address, uid, device_id, mac, hostname FROM leases").ToDictionary(l => l.Address, StringComparer.Ordinal);
            string address;
            if (requested is not null)
            {
                if (!IPAddress.TryParse(requested, out var ip) || !Network.Contains(ip) || ip.Equals(_gateway) ||
                    Ipv4.ToUInt32(ip) < _first || Ipv4.ToUInt32(ip) > _last)
                {
                    throw new NetworkException("AddressOutOfRange",
                        $"interface \"{deviceId}\": address {requested} is not a guest address of the node network {Network} (bridge {_gateway}); leave address empty to get one, or pick one in the node network");
                }

                if (taken.TryGetValue(requested, out var holder))
                {
                    throw new NetworkException("AddressInUse",
                        $"interface \"{deviceId}\": address {requested} is already leased to VM uid {holder.Uid} interface \"{holder.DeviceId}\"; pick another or leave it empty");
                }

                address = requested;
            }
            else
            {
                address = NextFree(c, tx, taken.Keys.ToHashSet(StringComparer.Ordinal))
                    ?? throw new NetworkException("AddressesExhausted", $"no free address left in the node network {Network} ({taken.Count} leased); delete VMs or configure a larger network-cidr");
            }

            Execute(c, tx, "INSERT INTO leases (address, uid, device_id, mac, hostname) VALUES ($a, $b, $c, $d, $e)", address, uid, deviceId, mac, hostname);
            tx.Commit();
            return new AddressLease(address, uid, deviceId, mac, hostname);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Replaces the VM's port forwards; a host port held by another VM is refused and nothing changes.</summary>
    public async Task SetForwardsAsync(string uid, IReadOnlyList<ForwardEntry> forwards, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            using var c = Open();
            using var tx = c.BeginTransaction(deferred: false);
            Execute(c, tx, "DELETE FROM forwards WHERE uid = $a", uid);
            foreach (var f in forwards)
            {
                var holder = Scalar(c, tx, "SELECT uid FROM forwards WHERE protocol = $a AND host_port = $b", f.Protocol, f.HostPort);
                if (holder is not null)
                {
                    throw new NetworkException("PortInUse",
                        $"host port {f.Protocol} {f.HostPort} is already forwarded to VM uid {holder}; pick another host_port");
                }

                Execute(c, tx, "INSERT INTO forwards (protocol, host_port, uid, address, guest_port) VALUES ($a, $b, $c, $d, $e)",
                    f.Protocol, f.HostPort, uid, f.Address, f.GuestPort);
            }

            tx.Commit();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Gives back every lease and forward of the VM. Safe to call twice.</summary>
    public async Task ReleaseAsync(string uid, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            using var c = Open();
            using var tx = c.BeginTransaction(deferred: false);
            Execute(c, tx, "DELETE FROM leases WHERE uid = $a", uid);
            Execute(c, tx, "DELETE FROM forwards WHERE uid = $a", uid);
            tx.Commit();
        }
        finally
        {
            _gate.Release();
        }
    }

    public IReadOnlyList<AddressLease> List()
    {
        using var c = Open();
        return Query(c, null, "SELECT address, uid, device_id, mac, hostname FROM leases ORDER BY address");
    }

    public IReadOnlyList<ForwardEntry> Forwards()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT protocol, host_port, uid, address, guest_port FROM forwards ORDER BY protocol, host_port";
        using var r = cmd.ExecuteReader();
        var list = new List<ForwardEntry>();
        while (r.Read())
        {
            list.Add(new ForwardEntry(r.GetString(0), r.GetInt32(1), r.GetString(2), r.GetString(3), r.GetInt32(4)));
        }

        return list;
    }

    private string? NextFree(SqliteConnection c, SqliteTransaction tx, HashSet<string> taken)
    {
        var cursor = Scalar(c, tx, "SELECT next FROM cursor WHERE id = 0") is { } s ? uint.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : _first;
        var count = _last - _first + 1;
        for (uint i = 0; i < count; i++)
        {
            var candidate = _first + ((cursor - _first + i) % count);
            var ip = Ipv4.FromUInt32(candidate);
            var text = ip.ToString();
            if (ip.Equals(_gateway) || taken.Contains(text))
            {
                continue;
            }

            var next = candidate == _last ? _first : candidate + 1;
            Execute(c, tx, "INSERT INTO cursor (id, next) VALUES (0, $a) ON CONFLICT (id) DO UPDATE SET next = excluded.next", (long)next);
            return text;
        }

        return null;
    }

    private static void CheckMacFree(SqliteConnection c, SqliteTransaction tx, string mac, string uid, string deviceId)
    {
        var holder = Query(c, tx, "SELECT address, uid, device_id, mac, hostname FROM leases WHERE mac = $a", mac).FirstOrDefault();
        if (holder is not null && (holder.Uid != uid || holder.DeviceId != deviceId))
        {
            throw new NetworkException("MacInUse",
                $"interface \"{deviceId}\": guest_mac {mac} is already used on the managed bridge by VM uid {holder.Uid} interface \"{holder.DeviceId}\"; give another guest_mac or leave it empty");
        }
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        Execute(c, "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;");
        return c;
    }

    private static void Execute(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static void Execute(SqliteConnection c, SqliteTransaction? tx, string sql, params object[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        cmd.ExecuteNonQuery();
    }

    private static string? Scalar(SqliteConnection c, SqliteTransaction? tx, string sql, params object[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        return cmd.ExecuteScalar() is { } v and not DBNull ? Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    private static List<AddressLease> Query(SqliteConnection c, SqliteTransaction? tx, string sql, params object[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        using var r = cmd.ExecuteReader();
        var list = new List<AddressLease>();
        while (r.Read())
        {
            list.Add(new AddressLease(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4)));
        }

        return list;
    }

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, object[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        for (var i = 0; i < args.Length; i++)
        {
            cmd.Parameters.AddWithValue("$" + (char)('a' + i), args[i]);
        }

        return cmd;
    }
}
