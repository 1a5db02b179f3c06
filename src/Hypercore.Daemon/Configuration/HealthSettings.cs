using Hypercore.GuestHealth;

namespace Hypercore.Daemon.Configuration;

/// <summary>Guest health (issue 14): the prober's settings, flags and TOML keys of the same name, mapped to section "Health".</summary>
public static class HealthSettings
{
    public static readonly DaemonSetting ProbeHostTargets = new("probe-host-targets", GuestHealthOptions.Section + ":AllowHostTargets",
        "let TCP/HTTP guest probes reach addresses that are the host itself (loopback, the host's own addresses); default off", "", IsSwitch: true);

    public static readonly DaemonSetting ProbeTick = new("probe-tick", GuestHealthOptions.Section + ":TickInterval",
        "how often the prober reads consoles and starts due probes; default 250ms", "duration")
    {
        Kind = SettingKind.Duration,
    };

    public static readonly DaemonSetting ProbeAllowedCidrs = new("probe-allowed-cidrs", GuestHealthOptions.Section + ":AllowedCidrs",
        "comma-separated CIDRs TCP/HTTP guest probes may reach besides the addresses the node leased the VM; default none", "cidrs");

    public static readonly IReadOnlyList<DaemonSetting> All = [ProbeHostTargets, ProbeTick, ProbeAllowedCidrs];
}
