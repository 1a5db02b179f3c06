using System.Globalization;
using System.Text;
using Hypercore.Drivers.Vmm;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Networking;

/// <summary>
/// The managed bridge and what serves it: the bridge itself with the node address, dnsmasq's generated config and
/// hosts file (one static MAC -> address entry per lease), and the daemon's nftables table (masquerade and port
/// forwards). <see cref="SyncAsync"/> makes the host match the leases database; it is the only writer of the hosts
/// file and the table, so after any change (or a daemon restart) one call brings everything in line.
/// </summary>
public sealed partial class NodeNetwork : IDisposable
{
    private readonly NodeNetworkOptions _options;
    private readonly NetworkCommands _commands;
    private readonly TimeProvider _time;
    private readonly ILogger<NodeNetwork> _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Lazy<AddressLeases> _leases;
    private bool _bridgeReady;

    /// <param name="policy">The host networks a spec may reach, as the daemon's Create checks them; null: made from the options.</param>
    public NodeNetwork(IOptions<NodeNetworkOptions> options, TimeProvider time, ILogger<NodeNetwork> log, HostAccess.HostNetworkPolicy? policy = null)
    {
        _options = options.Value;
        Policy = policy ?? _options.HostNetworkPolicy();
        _commands = new NetworkCommands(_options);
        _time = time;
        _log = log;
        _leases = new(() =>
        {
            var (gw, net) = _options.ParsedCidr();
            return new AddressLeases(Path.Combine(_options.StateDirectory, "leases.db"), gw, net);
        });
    }

    public NodeNetworkOptions Options => _options;

    /// <summary>Which bridges and forwarded host ports a TAP interface may take (made once, not per start).</summary>
    public HostAccess.HostNetworkPolicy Policy { get; }

    public NetworkCommands Commands => _commands;

    public AddressLeases Leases => _leases.Value;

    public string ConfigPath => Path.Combine(_options.StateDirectory, "dnsmasq.conf");

    public string HostsPath => Path.Combine(_options.StateDirectory, "dhcp-hosts");

    public string PidPath => Path.Combine(_options.StateDirectory, "dnsmasq.pid");

    public string DnsmasqLog => Path.Combine(_options.StateDirectory, "dnsmasq.log");

    /// <summary>The pid of the dnsmasq this node runs for the bridge, or null when none is alive.</summary>
    public int? DnsmasqPid
    {
        get
        {
            try
            {
                var text = File.Exists(PidPath) ? File.ReadAllText(PidPath).Trim() : "";
                return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && IsOurDnsmasq(pid) ? pid : null;
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    /// <summary>Creates the bridge (if missing), gives it the node address and brings it up. Idempotent.</summary>
    public async Task EnsureBridgeAsync(CancellationToken ct)
    {
        if (_bridgeReady && await _commands.LinkExistsAsync(_options.Bridge, ct))
        {
            return;
        }

        var bridge = _options.Bridge;
        var show = await _commands.RunAsync("ip", ["-d", "-j", "link", "show", "dev", bridge], ct);
        if (!show.Succeeded)
        {
            await _commands.CheckAsync("ip", ["link", "add", "name", bridge, "type", "bridge"], ct);
            LogBridgeCreated(bridge, _options.Cidr);
        }
        else if (!show.StandardOutput.Contains("\"info_kind\":\"bridge\"", StringComparison.Ordinal))
        {
            throw new NetworkException("BridgeConflict",
                $"network-bridge \"{bridge}\" exists on this node and is not a bridge; remove it or choose another name with network-bridge");
        }

        await _commands.CheckAsync("ip", ["addr", "replace", _options.Cidr, "dev", bridge], ct);
        await _commands.CheckAsync("ip", ["link", "set", "dev", bridge, "up"], ct);
        _bridgeReady = true;
    }

    /// <summary>
    /// Writes dnsmasq's config and hosts file from the leases, tells a running dnsmasq to re-read the hosts
    /// (SIGHUP), and replaces the nftables table as one transaction.
    /// </summary>
    public async Task SyncAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            Directory.CreateDirectory(_options.StateDirectory);
            WriteIfChanged(ConfigPath, DnsmasqConfig());
            var hostsChanged = WriteIfChanged(HostsPath, HostsFile(Leases.List()));
            if (hostsChanged && DnsmasqPid is { } pid)
            {
                HostProcess.Signal(pid, 1); // SIGHUP: dnsmasq re-reads dhcp-hostsfile
            }

            await ApplyNftAsync(ct);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts dnsmasq for the bridge unless ours already runs (a daemon restart adopts it). Returns its pid.</summary>
    public async Task<int> EnsureDnsmasqAsync(CancellationToken ct)
    {
        if (DnsmasqPid is { } running)
        {
            return running;
        }

        var (file, args) = _commands.Wrap(_options.Dnsmasq, ["--keep-in-foreground", "--conf-file=" + ConfigPath]);
        var pid = await HostProcess.StartDetachedAsync(file, args, _options.StateDirectory, DnsmasqLog, ct);

        // dnsmasq writes its pid file once it has bound its sockets; until then it is not serving.
        var deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(10);
        while (DnsmasqPid is null)
        {
            if (_time.GetUtcNow() > deadline || !HostProcess.IsAlive(pid))
            {
                var tail = File.Exists(DnsmasqLog) ? string.Join(" | ", File.ReadLines(DnsmasqLog).TakeLast(3)) : "";
                throw new NetworkException("DnsmasqFailed", $"dnsmasq for {_options.Bridge} did not start: {tail}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, ct);
        }

        LogDnsmasqStarted(DnsmasqPid!.Value, _options.Bridge);
        return DnsmasqPid!.Value;
    }

    /// <summary>Stops our dnsmasq (tests, and turning managed mode off). Safe to call twice.</summary>
    public async Task StopDnsmasqAsync(CancellationToken ct)
    {
        if (DnsmasqPid is { } pid)
        {
            await HostProcess.KillAsync(pid, _time, ct);
        }
    }

    /// <summary>Removes the table, dnsmasq and the bridge (tests and turning managed mode off). Leases stay.</summary>
    public async Task TearDownAsync(CancellationToken ct)
    {
        await StopDnsmasqAsync(ct);
        await _commands.RunAsync("nft", ["delete", "table", "inet", _options.NftTable], ct);
        if (await _commands.LinkExistsAsync(_options.Bridge, ct))
        {
            await _commands.CheckAsync("ip", ["link", "del", "dev", _options.Bridge], ct);
        }

        _bridgeReady = false;
    }

    public void Dispose()
    {
        _gate.Dispose();
        if (_leases.IsValueCreated)
        {
            _leases.Value.Dispose();
        }
    }

    internal string DnsmasqConfig()
    {
        var (gw, net) = _options.ParsedCidr();
        var mask = NetMask(net.PrefixLength);
        var d = _options.StateDirectory;
        var text = new StringBuilder()
            .AppendLine("# Generated by vistarad for the managed bridge; rewritten on every start. Do not edit.")
            .AppendLine(CultureInfo.InvariantCulture, $"interface={_options.Bridge}")
            .AppendLine("bind-interfaces")
            .AppendLine("except-interface=lo")
            .AppendLine(CultureInfo.InvariantCulture, $"listen-address={gw}")

            // "static": only MACs in the hosts file get an address, so every address on the bridge comes from the IPAM.
            .AppendLine(CultureInfo.InvariantCulture, $"dhcp-range={net.BaseAddress},static,{mask},12h")
            .AppendLine(CultureInfo.InvariantCulture, $"dhcp-hostsfile={HostsPath}")
            .AppendLine(CultureInfo.InvariantCulture, $"dhcp-leasefile={Path.Combine(d, "dnsmasq.leases")}")
            .AppendLine(CultureInfo.InvariantCulture, $"dhcp-option=option:router,{gw}")
            .AppendLine(CultureInfo.InvariantCulture, $"dhcp-option=option:dns-server,{gw}")
            .AppendLine("dhcp-authoritative")
            .AppendLine(CultureInfo.InvariantCulture, $"domain={_options.Domain}")
            .AppendLine(CultureInfo.InvariantCulture, $"local=/{_options.Domain}/")
            .AppendLine("no-hosts")
            .AppendLine(CultureInfo.InvariantCulture, $"pid-file={PidPath}");
        return text.ToString();
    }

    internal static string HostsFile(IEnumerable<AddressLease> leases)
    {
        var text = new StringBuilder();
        foreach (var l in leases)
        {
            text.Append(CultureInfo.InvariantCulture, $"{l.Mac},{l.Address},{l.Hostname}\n");
        }

        return text.ToString();
    }

    /// <summary>
    /// The whole table: dropped and recreated in one nft transaction, so there is never a half-applied set. It exists
    /// only while there is something to do: a guest to masquerade (NAT on and a lease) or a port forward.
    /// </summary>
    internal string NftScript(IReadOnlyList<ForwardEntry> forwards, int leases)
    {
        var table = _options.NftTable;
        var (_, net) = _options.ParsedCidr();
        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"table inet {table}\n")
            .Append(CultureInfo.InvariantCulture, $"delete table inet {table}\n");
        if ((!_options.Nat || leases == 0) && forwards.Count == 0)
        {
            return text.ToString();
        }

        text.Append(CultureInfo.InvariantCulture, $"table inet {table} {{\n");
        var dnat = forwards.Select(f => $"    fib daddr type local {f.Protocol} dport {f.HostPort} dnat ip to {f.Address}:{f.GuestPort}\n").ToList();
        text.Append("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
        dnat.ForEach(l => text.Append(l));
        text.Append("  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n");
        dnat.ForEach(l => text.Append(l));
        text.Append("  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        if (forwards.Count > 0)
        {
            // Hairpin: a guest reaching a forward on the node that lands on a guest of the same bridge must see the
            // answer come back through the node, or it arrives straight from the other guest and is dropped.
            text.Append(CultureInfo.InvariantCulture, $"    ct status dnat ip saddr {net} ip daddr {net} masquerade\n");
        }

        if (_options.Nat)
        {
            var uplink = _options.Uplink.Length > 0 ? $"oifname \"{_options.Uplink}\" " : $"oifname != \"{_options.Bridge}\" ";
            text.Append(CultureInfo.InvariantCulture, $"    ip saddr {net} ip daddr != {net} {uplink}masquerade\n");
        }

        text.Append("  }\n}\n");
        return text.ToString();
    }

    private async Task ApplyNftAsync(CancellationToken ct)
    {
        var forwards = Leases.Forwards();
        var leases = Leases.List().Count;
        if ((_options.Nat && leases > 0) || forwards.Count > 0)
        {
            // Without forwarding the node would masquerade and DNAT nothing: turn it on in this namespace.
            await _commands.CheckAsync("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"], ct);
        }

        await _commands.ApplyNftAsync(NftScript(forwards, leases), Path.Combine(_options.StateDirectory, "nft.rules"), ct);
    }

    private bool IsOurDnsmasq(int pid) =>
        pid > 1 && HostProcess.IsAlive(pid) && HostProcess.CommandLine(pid).Contains("--conf-file=" + ConfigPath);

    private static bool WriteIfChanged(string path, string content)
    {
        if (File.Exists(path) && File.ReadAllText(path) == content)
        {
            return false;
        }

        // Write-then-rename: dnsmasq never reads a half-written hosts file. Readable by the user dnsmasq drops to.
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, content);
        File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.Move(tmp, path, overwrite: true);
        return true;
    }

    private static string NetMask(int prefix) => Ipv4.FromUInt32(prefix == 0 ? 0u : uint.MaxValue << (32 - prefix)).ToString();

    [LoggerMessage(EventId = 3650, Level = LogLevel.Information, Message = "Created managed bridge {Bridge} with {Cidr}")]
    private partial void LogBridgeCreated(string bridge, string cidr);

    [LoggerMessage(EventId = 3651, Level = LogLevel.Information, Message = "Started dnsmasq (pid {Pid}) for DHCP and DNS on {Bridge}")]
    private partial void LogDnsmasqStarted(int pid, string bridge);
}
