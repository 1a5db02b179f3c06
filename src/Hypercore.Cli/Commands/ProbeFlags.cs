using System.CommandLine;
using System.Globalization;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Commands;

/// <summary>
/// Guest health (issue 14): `--ready-…` and `--live-…` flags. One check per probe (console regex, TCP port or HTTP
/// port/path) plus its timing in whole seconds; flags override a probe from hac.toml or the spec file.
/// </summary>
internal sealed class ProbeFlags
{
    /// <summary>The default guest image prints this once it is up (scripts/image/init).</summary>
    public const string DefaultReadyRegex = "HYPERCORE-GUEST-READY";

    private readonly string _prefix;
    private readonly string _what;
    private readonly Option<string?> _console;
    private readonly Option<int?> _tcp;
    private readonly Option<string?> _http;
    private readonly Option<int?> _delay;
    private readonly Option<int?> _period;
    private readonly Option<int?> _timeout;
    private readonly Option<int?> _failures;

    public ProbeFlags(string prefix, string what)
    {
        _prefix = prefix;
        _what = what;
        _console = new($"--{prefix}-console") { Description = $"{what} probe: a console line matching this regex", HelpName = "regex" };
        _tcp = SharedOptions.WholeNumber($"--{prefix}-tcp", "a port number", $"{what} probe: a TCP connect to this guest port", "port");
        _http = new($"--{prefix}-http") { Description = $"{what} probe: an HTTP GET to this guest port and path (200-399 is success)", HelpName = "port[/path]" };
        _delay = SharedOptions.WholeNumber($"--{prefix}-delay", "a whole number of seconds", $"{what} probe: seconds after boot before the first probe [default: 0]", "seconds");
        _period = SharedOptions.WholeNumber($"--{prefix}-period", "a whole number of seconds", $"{what} probe: seconds between probes [default: 10]", "seconds");
        _timeout = SharedOptions.WholeNumber($"--{prefix}-timeout", "a whole number of seconds", $"{what} probe: seconds a TCP/HTTP probe may take [default: 1]", "seconds");
        _failures = SharedOptions.WholeNumber($"--{prefix}-failures", "a whole number", $"{what} probe: failures in a row that count [default: 3]", "n");
    }

    public void AddTo(Command command)
    {
        command.Add(_console);
        command.Add(_tcp);
        command.Add(_http);
        command.Add(_delay);
        command.Add(_period);
        command.Add(_timeout);
        command.Add(_failures);
    }

    /// <summary>The probe after applying the flags to <paramref name="existing"/> (null: none given anywhere).</summary>
    public Probe? Apply(ParseResult p, Probe? existing)
    {
        var console = p.GetValue(_console);
        var tcp = p.GetValue(_tcp);
        var http = p.GetValue(_http);
        var checks = (console is null ? 0 : 1) + (tcp is null ? 0 : 1) + (http is null ? 0 : 1);
        if (checks > 1)
        {
            throw new UsageException($"give one of --{_prefix}-console, --{_prefix}-tcp or --{_prefix}-http, not several");
        }

        var timing = new[] { p.GetValue(_delay), p.GetValue(_period), p.GetValue(_timeout), p.GetValue(_failures) };
        if (checks == 0 && existing is null)
        {
            if (timing.Any(t => t is not null))
            {
                throw new UsageException($"--{_prefix}-delay/-period/-timeout/-failures need a {_what} probe: --{_prefix}-console, --{_prefix}-tcp or --{_prefix}-http");
            }

            return null;
        }

        var probe = existing?.Clone() ?? new Probe();
        if (checks == 1)
        {
            probe.Console = null;
            probe.TcpSocket = null;
            probe.HttpGet = null;
        }

        if (console is not null)
        {
            probe.Console = new ConsoleProbe { Regex = console };
        }
        else if (tcp is not null)
        {
            probe.TcpSocket = new TcpSocketProbe { Port = tcp.Value };
        }
        else if (http is not null)
        {
            probe.HttpGet = ParseHttp($"--{_prefix}-http", http);
        }

        probe.InitialDelaySeconds = NonNegative($"--{_prefix}-delay", timing[0]) ?? probe.InitialDelaySeconds;
        probe.PeriodSeconds = Positive($"--{_prefix}-period", timing[1]) ?? probe.PeriodSeconds;
        probe.TimeoutSeconds = Positive($"--{_prefix}-timeout", timing[2]) ?? probe.TimeoutSeconds;
        probe.FailureThreshold = Positive($"--{_prefix}-failures", timing[3]) ?? probe.FailureThreshold;
        return probe;
    }

    /// <summary>"8080" or "8080/healthz" (also hac.toml's http = "…").</summary>
    public static HttpGetProbe ParseHttp(string what, string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var portText = slash < 0 ? text : text[..slash];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            throw new UsageException($"{what} must be PORT or PORT/PATH, e.g. 8080/healthz, got \"{text}\"");
        }

        return new HttpGetProbe { Port = port, Path = slash < 0 ? "/" : text[slash..] };
    }

    private static int? Positive(string flag, int? value) =>
        value is null or > 0 ? value : throw new UsageException($"{flag} must be at least 1, got {value}");

    private static int? NonNegative(string flag, int? value) =>
        value is null or >= 0 ? value : throw new UsageException($"{flag} must be zero or more, got {value}");
}
