using System.Text.RegularExpressions;

namespace Hypercore.MicroVms;

/// <summary>
/// Checks a spec before anything is written. Every writer (gRPC, HTTP, CLI, Kubernetes) uses this, so one
/// malformed request is rejected the same way everywhere. It checks shape only; whether the kernel file exists
/// on this node is a runtime fact and shows in status instead.
/// </summary>
public static partial class MicroVmSpecValidator
{
    public const int MaxVcpu = 64;
    public const int MinMemoryInMb = 16;
    public const int MaxMemoryInMb = 1024 * 1024;

    [GeneratedRegex("^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?\\z")]
    private static partial Regex DnsLabel();

    [GeneratedRegex("^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\\z")]
    private static partial Regex Mac();

    [GeneratedRegex("^[0-9a-fA-F-]{1,64}\\z")]
    private static partial Regex PartitionId();

    /// <summary>
    /// A value from the request in double quotes, its control characters escaped (\n, \r, \t, \u00XX), so a message
    /// about an id "web\n" stays on one line and shows what was sent. Printable text is unchanged.
    /// </summary>
    public static string Quoted(string? value)
    {
        value ??= "";
        if (!value.AsSpan().ContainsAnyInRange('\0', '\u001f') && !value.Contains('\u007f'))
        {
            return $"\"{value}\"";
        }

        var text = new System.Text.StringBuilder(value.Length + 8).Append('"');
        foreach (var c in value)
        {
            _ = c switch
            {
                '\n' => text.Append("\\n"),
                '\r' => text.Append("\\r"),
                '\t' => text.Append("\\t"),
                < ' ' or '\u007f' => text.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)),
                _ => text.Append(c),
            };
        }

        return text.Append('"').ToString();
    }

    /// <summary>Returns every problem found, each naming the field; empty means valid.</summary>
    public static IReadOnlyList<string> Validate(MicroVmSpec spec)
    {
        var errors = new List<string>();
        if (!IsName(spec.Id))
        {
            errors.Add($"id {Quoted(spec.Id)} must be 1-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit");
        }

        if (!IsName(spec.Namespace))
        {
            errors.Add($"namespace {Quoted(spec.Namespace)} must be 1-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit");
        }

        if (spec.Vcpu is < 1 or > MaxVcpu)
        {
            errors.Add($"vcpu must be between 1 and {MaxVcpu}, got {spec.Vcpu}");
        }

        if (spec.MemoryInMb is < MinMemoryInMb or > MaxMemoryInMb)
        {
            errors.Add($"memory_in_mb must be between {MinMemoryInMb} and {MaxMemoryInMb}, got {spec.MemoryInMb}");
        }

        if (string.IsNullOrWhiteSpace(spec.Kernel.Image))
        {
            errors.Add("kernel.image is required (a path to a kernel image on the node)");
        }

        // issue 15 (alloc7): the collections below are nearly always empty; each check is skipped when it has nothing
        // to look at, so a plain spec is checked without an enumerator, iterator or grouping per Create.
        if (spec.Kernel.Cmdline.Count > 0)
        {
            foreach (var key in spec.Kernel.Cmdline.Keys)
            {
                if (key.Length == 0 || key.Any(char.IsWhiteSpace) || key.Contains('='))
                {
                    errors.Add($"kernel.cmdline key {Quoted(key)} must be non-empty without spaces or '='");
                }
            }

            if (spec.Kernel.Cmdline.Values.Any(v => v.Any(char.IsWhiteSpace)))
            {
                errors.Add("kernel.cmdline values must not contain whitespace");
            }
        }

        if (spec.Initrd is not null && string.IsNullOrWhiteSpace(spec.Initrd.Image))
        {
            errors.Add("initrd.image must be set when initrd is given");
        }

        IReadOnlyList<VolumeSpec> volumes = spec.RootVolume is null ? spec.AdditionalVolumes : [spec.RootVolume, .. spec.AdditionalVolumes];
        for (var i = 0; i < volumes.Count; i++)
        {
            var v = volumes[i];
            if (string.IsNullOrWhiteSpace(v.Id))
            {
                errors.Add("every volume needs an id");
            }

            if (string.IsNullOrWhiteSpace(v.HostPath) && v.SizeInMb is not > 0 && v.ContainerSource is null)
            {
                errors.Add($"volume {Quoted(v.Id)} needs source.host_path, source.container_source (an OCI image reference), or size_in_mb for a scratch disk");
            }

            // Images (issue 11): a container source is a registry reference, and the only source of its volume.
            if (v.ContainerSource is { } source)
            {
                if (!Hypercore.Images.ImageSources.IsReference(source))
                {
                    errors.Add($"volume {Quoted(v.Id)} source.container_source {Quoted(source)} is not an OCI image reference; write it with its registry host, e.g. localhost:5000/rootfs:1 or docker.io/library/busybox:latest");
                }

                if (v.HostPath.Length > 0)
                {
                    errors.Add($"volume {Quoted(v.Id)} gives both source.host_path and source.container_source; give one");
                }

                if (v.IsReadOnly && v.SizeInMb is > 0)
                {
                    errors.Add($"volume {Quoted(v.Id)} is read-only and shares the image's cached disk, which is never grown; size_in_mb grows a writable volume's own view: drop size_in_mb or is_read_only");
                }
            }

            if (v.SizeInMb is < 0 or > 1024 * 1024)
            {
                errors.Add($"volume {Quoted(v.Id)} size_in_mb must be between 1 and 1048576, got {v.SizeInMb}");
            }

            if (v.PartitionId is { } partition && !PartitionId().IsMatch(partition))
            {
                errors.Add($"volume {Quoted(v.Id)} partition_id {Quoted(partition)} is not a PARTUUID (1-64 hex digits and dashes, e.g. 6c2a6b1e-01)");
            }
        }

        for (var i = 0; i < spec.AdditionalVolumes.Count; i++)
        {
            if (spec.AdditionalVolumes[i] is { PartitionId: not null } v)
            {
                errors.Add($"volume {Quoted(v.Id)} partition_id is only allowed on the root volume (it selects the partition the guest mounts as root); remove it or make this the root_volume");
            }
        }

        if (volumes.Count > 1)
        {
            foreach (var dup in volumes.GroupBy(v => v.Id).Where(g => g.Count() > 1))
            {
                errors.Add($"volume id {Quoted(dup.Key)} is used more than once");
            }
        }

        var interfaces = spec.Interfaces;
        for (var i = 0; i < interfaces.Count; i++)
        {
            var nic = interfaces[i];
            if (string.IsNullOrWhiteSpace(nic.DeviceId))
            {
                errors.Add("every interface needs a device_id");
            }

            if (nic.GuestMac is { Length: > 0 } mac && !Mac().IsMatch(mac))
            {
                errors.Add($"interface {Quoted(nic.DeviceId)} guest_mac {Quoted(mac)} is not a MAC address like 02:00:00:00:00:01");
            }

            if (nic.Nameservers.Count > 0 && nic.Address is null)
            {
                errors.Add($"interface {Quoted(nic.DeviceId)} address.nameservers need address.address (they are given to the guest with its static address)");
            }

            if (nic.Nameservers.Count > 2)
            {
                errors.Add($"interface {Quoted(nic.DeviceId)} has {nic.Nameservers.Count} nameservers; at most 2 are supported (the kernel's ip= argument carries dns0 and dns1)");
            }

            foreach (var ns in nic.Nameservers.Where(ns => !IsIPv4(ns)))
            {
                errors.Add($"interface {Quoted(nic.DeviceId)} nameserver {Quoted(ns)} is not an IPv4 address like 10.0.0.1");
            }
        }

        if (interfaces.Count > 1)
        {
            foreach (var dup in interfaces.GroupBy(n => n.DeviceId).Where(g => g.Count() > 1))
            {
                errors.Add($"interface device_id {Quoted(dup.Key)} is used more than once");
            }
        }

        // Guest bootstrap (cloud-init): metadata keys, size and YAML shape; static addresses in CIDR form.
        if (spec.Metadata.Count > 0)
        {
            errors.AddRange(Bootstrap.GuestMetadataRules.Validate(spec.Metadata));
        }

        for (var i = 0; i < interfaces.Count; i++)
        {
            if (interfaces[i] is { Address: { Length: > 0 } address } nic && !IsCidr(address))
            {
                errors.Add($"interface {Quoted(nic.DeviceId)} address {Quoted(nic.Address)} is not an address in CIDR form like 10.0.0.2/24");
            }
        }

        // Node networking (issue 12): port forwards.
        var ports = 0;
        for (var i = 0; i < interfaces.Count; i++)
        {
            var nic = interfaces[i];
            ports += nic.Ports.Count;
            foreach (var p in nic.Ports)
            {
                if (p.Protocol is not ("tcp" or "udp"))
                {
                    errors.Add($"interface {Quoted(nic.DeviceId)} port protocol {Quoted(p.Protocol)} must be tcp or udp");
                }

                if (p.HostPort is < 1 or > 65535 || p.GuestPort is < 1 or > 65535)
                {
                    errors.Add($"interface {Quoted(nic.DeviceId)} port {p.HostPort} -> {p.GuestPort}: ports must be between 1 and 65535");
                }
            }

            if (nic.Ports.Count > 0 && nic.Type != InterfaceType.Tap)
            {
                errors.Add($"interface {Quoted(nic.DeviceId)}: ports are forwarded on the node's managed bridge, which only TAP interfaces join; remove ports or make it a TAP interface");
            }

            if (nic.Parent is { Length: > 0 } && nic.Type != InterfaceType.Macvtap)
            {
                errors.Add($"interface {Quoted(nic.DeviceId)}: macvtap_parent is only for MACVTAP interfaces");
            }
        }

        if (ports > 1)
        {
            foreach (var dup in interfaces.SelectMany(n => n.Ports).GroupBy(p => (p.Protocol, p.HostPort)).Where(g => g.Count() > 1))
            {
                errors.Add($"host port {dup.Key.Protocol} {dup.Key.HostPort} is forwarded more than once");
            }
        }

        if (spec.Provider.Length > 0 && !IsName(spec.Provider))
        {
            errors.Add($"provider {Quoted(spec.Provider)} is not a valid provider name");
        }

        // Guest health (issue 14).
        ValidateProbe(spec, spec.ReadinessProbe, "readiness_probe", errors);
        ValidateProbe(spec, spec.LivenessProbe, "liveness_probe", errors);
        ValidateProbe(spec, spec.StartupProbe, "startup_probe", errors);
        // snapshots
        if (spec.RestoreFrom is { } snapshot && Snapshots.SnapshotStore.NameProblem(snapshot) is { } badSnapshot)
        {
            errors.Add("restore_from: " + badSnapshot);
        }

        // Kubernetes (issue 13): placement
        if (spec.Placement is not null)
        {
            errors.AddRange(PlacementValidator.Validate(spec)); // yields nothing without a placement
        }

        return errors;
    }

    /// <summary>Longest a probe regex may run on one console line; a pattern that takes longer counts as no match.</summary>
    public static readonly TimeSpan ProbeRegexTimeout = TimeSpan.FromMilliseconds(100);

    public const int MaxProbeRegexLength = 1024;

    /// <summary>
    /// A console probe's regex. Linear-time (NonBacktracking): the daemon matches it against every console line a guest
    /// prints, so no pattern may make matching a line expensive; the timeout is a second guard.
    /// </summary>
    public static Regex ProbeRegex(string pattern) =>
        new(pattern, RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, ProbeRegexTimeout);
    public const int MaxProbeSeconds = 3600;
    public const int MaxFailureThreshold = 1000;

    private static void ValidateProbe(MicroVmSpec spec, ProbeSpec? probe, string field, List<string> errors)
    {
        if (probe is null)
        {
            return;
        }

        var checks = (probe.Console is null ? 0 : 1) + (probe.TcpSocket is null ? 0 : 1) + (probe.HttpGet is null ? 0 : 1);
        if (checks != 1)
        {
            errors.Add($"{field} needs exactly one of console, tcp_socket or http_get, got {checks}");
        }

        if (probe.Console is { } console)
        {
            if (string.IsNullOrEmpty(console.Regex) || console.Regex.Length > MaxProbeRegexLength)
            {
                errors.Add($"{field}.console.regex must be 1-{MaxProbeRegexLength} characters, e.g. \"HYPERCORE-GUEST-READY\"");
            }
            else
            {
                try
                {
                    _ = ProbeRegex(console.Regex);
                }
                catch (ArgumentException ex)
                {
                    errors.Add($"{field}.console.regex {Quoted(console.Regex)} is not a valid .NET regular expression: {ex.Message}");
                }
                catch (NotSupportedException)
                {
                    errors.Add($"{field}.console.regex {Quoted(console.Regex)} uses a construct the node's linear-time matcher does not support " +
                        "(backreferences, lookarounds, atomic groups, conditionals); rewrite it without them");
                }
            }
        }

        if (probe.TcpSocket is { } tcp && tcp.Port is < 1 or > 65535)
        {
            errors.Add($"{field}.tcp_socket.port must be between 1 and 65535, got {tcp.Port}");
        }

        if (probe.HttpGet is { } http)
        {
            if (http.Port is < 1 or > 65535)
            {
                errors.Add($"{field}.http_get.port must be between 1 and 65535, got {http.Port}");
            }

            if (!http.Path.StartsWith('/') || http.Path.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)) ||
                !Uri.TryCreate("http://guest" + http.Path, UriKind.Absolute, out _))
            {
                errors.Add($"{field}.http_get.path {Quoted(http.Path)} must be an absolute URL path without spaces, e.g. /healthz");
            }
        }

        if ((probe.TcpSocket is not null || probe.HttpGet is not null) && spec.Interfaces.Count == 0)
        {
            errors.Add($"{field}: tcp_socket and http_get probe the guest's address, and this VM has no network interface; add one (with a static address) or use a console probe");
        }

        if (probe.InitialDelaySeconds is < 0 or > MaxProbeSeconds)
        {
            errors.Add($"{field}.initial_delay_seconds must be between 0 and {MaxProbeSeconds}, got {probe.InitialDelaySeconds}");
        }

        if (probe.PeriodSeconds is < 1 or > MaxProbeSeconds)
        {
            errors.Add($"{field}.period_seconds must be between 1 and {MaxProbeSeconds}, got {probe.PeriodSeconds}");
        }

        if (probe.TimeoutSeconds is < 1 or > MaxProbeSeconds)
        {
            errors.Add($"{field}.timeout_seconds must be between 1 and {MaxProbeSeconds}, got {probe.TimeoutSeconds}");
        }

        if (probe.FailureThreshold is < 1 or > MaxFailureThreshold)
        {
            errors.Add($"{field}.failure_threshold must be between 1 and {MaxFailureThreshold}, got {probe.FailureThreshold}");
        }
    }

    private static bool IsIPv4(string value) =>
        System.Net.IPAddress.TryParse(value, out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork &&
        value.Count(c => c == '.') == 3;

    private static bool IsCidr(string value)
    {
        var parts = value.Split('/');
        return parts.Length == 2 && System.Net.IPAddress.TryParse(parts[0], out var ip) &&
            int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix) &&
            prefix <= (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
    }

    public static bool IsName(string? value) => value is { Length: > 0 and <= 63 } && DnsLabel().IsMatch(value);
}
