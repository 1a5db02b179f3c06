using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Commands;

/// <summary>Guest health (issue 14): probe flags and hac.toml tables, and waiting for GuestReady.</summary>
public sealed class ProbeFlagsTests : FakeDaemonTest
{
    [Test]
    public async Task Run_ProbeFlags_SentInTheCreateRequest()
    {
        var result = await Vis("run", "--name", "web1", "--no-wait", "--network", "1",
            "--ready-console", "APP-READY", "--ready-period", "2", "--ready-failures", "1",
            "--live-http", "8080/healthz", "--live-delay", "30", "--live-timeout", "3");

        result.ExitCode.Should().Be(0, result.ToString());
        var spec = Service.ReceivedOf<CreateMicroVMRequest>().Single().Microvm;
        spec.ReadinessProbe.Should().Be(new Probe { Console = new ConsoleProbe { Regex = "APP-READY" }, PeriodSeconds = 2, FailureThreshold = 1 });
        spec.LivenessProbe.Should().Be(new Probe { HttpGet = new HttpGetProbe { Port = 8080, Path = "/healthz" }, InitialDelaySeconds = 30, TimeoutSeconds = 3 });
    }

    [Test]
    public async Task Run_HacTomlProbeTables_SentAndFlagsOverrideTheCheck()
    {
        var config = WriteFile(".toml", """
            name = "web1"
            network = 1
            [readiness]
            console = "HYPERCORE-GUEST-READY"
            period = 1
            [liveness]
            tcp = 22
            initial_delay = 10
            failure_threshold = 5
            """);

        var result = await Vis("run", "-c", config, "--no-wait", "--live-tcp", "2222");

        result.ExitCode.Should().Be(0, result.ToString());
        var spec = Service.ReceivedOf<CreateMicroVMRequest>().Single().Microvm;
        spec.ReadinessProbe.Should().Be(new Probe { Console = new ConsoleProbe { Regex = "HYPERCORE-GUEST-READY" }, PeriodSeconds = 1 });
        spec.LivenessProbe.Should().Be(new Probe { TcpSocket = new TcpSocketProbe { Port = 2222 }, InitialDelaySeconds = 10, FailureThreshold = 5 });
    }

    [Test]
    public async Task Run_StartupFlagsAndTable_SentInTheCreateRequest()
    {
        var config = WriteFile(".toml", """
            name = "slow1"
            network = 1
            [startup]
            console = "APP-STARTED"
            period = 5
            failure_threshold = 60
            """);

        var fromFile = await Vis("run", "-c", config, "--no-wait");
        var fromFlags = await Vis("run", "--name", "slow2", "--network", "1", "--no-wait", "--startup-tcp", "22", "--startup-period", "2", "--startup-failures", "90");

        fromFile.ExitCode.Should().Be(0, fromFile.ToString());
        fromFlags.ExitCode.Should().Be(0, fromFlags.ToString());
        var sent = Service.ReceivedOf<CreateMicroVMRequest>().Select(r => r.Microvm).ToList();
        sent[0].StartupProbe.Should().Be(new Probe { Console = new ConsoleProbe { Regex = "APP-STARTED" }, PeriodSeconds = 5, FailureThreshold = 60 });
        sent[1].StartupProbe.Should().Be(new Probe { TcpSocket = new TcpSocketProbe { Port = 22 }, PeriodSeconds = 2, FailureThreshold = 90 });
        sent.Should().OnlyContain(s => s.ReadinessProbe == null && s.LivenessProbe == null);
    }

    [TestCase("--startup-console", "x", "--startup-http", "80", "give one of --startup-console, --startup-tcp or --startup-http, not several")]
    [TestCase("--startup-failures", "5", "", "", "--startup-delay/-period/-timeout/-failures need a startup probe")]
    [TestCase("--ready-console", "x", "--ready-tcp", "22", "give one of --ready-console, --ready-tcp or --ready-http, not several")]
    [TestCase("--live-period", "5", "", "", "--live-delay/-period/-timeout/-failures need a liveness probe")]
    [TestCase("--ready-http", "x/y", "", "", "--ready-http must be PORT or PORT/PATH, e.g. 8080/healthz, got \"x/y\"")]
    [TestCase("--ready-console", "x", "--ready-period", "0", "--ready-period must be at least 1, got 0")]
    public async Task Run_BadProbeFlags_ExitsUsageAndSendsNothing(string flag1, string value1, string flag2, string value2, string message)
    {
        var args = new List<string> { "run", "--name", "web1", "--no-wait", flag1, value1 };
        if (flag2.Length > 0)
        {
            args.AddRange([flag2, value2]);
        }

        var result = await Vis([.. args]);

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain(message);
        Service.ReceivedOf<CreateMicroVMRequest>().Should().BeEmpty();
    }

    [Test]
    public async Task Run_HacTomlProbeWithTwoChecks_ExitsUsage()
    {
        var config = WriteFile(".toml", """
            name = "web1"
            [readiness]
            console = "x"
            tcp = 22
            """);

        var result = await Vis("run", "-c", config, "--no-wait");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain("[readiness] needs exactly one of console = \"regex\", tcp = PORT or http = \"PORT/PATH\"");
    }

    [Test]
    public async Task Run_WaitReady_RunningIsNotEnough_EndsWhenGuestReadyIsTrue()
    {
        var (exit, output, error) = StartVis("run", "--name", "web1", "--wait-ready");
        await Service.WatchStarted.WaitAsync(Patience);

        Service.SetPhase("default", "web1", "Running");
        Service.SetGuestReady("default", "web1", "False", "Probing", "waiting for readiness probe console /HYPERCORE-GUEST-READY/");
        await Eventually(() => error.ToString().Contains("Running, GuestReady False: waiting for readiness probe"), "the not-ready line");
        exit.IsCompleted.Should().BeFalse("Running without GuestReady is not the end of the wait");

        Service.SetGuestReady("default", "web1", "True", "ProbeSucceeded", "console line matched /HYPERCORE-GUEST-READY/: HYPERCORE-GUEST-READY");

        (await Finished(exit)).Should().Be(0, error.ToString());
        output.ToString().Split('\n')[1].Should().MatchRegex(@"^web1\s.*\sTrue$", "the READY column");
        Service.ReceivedOf<CreateMicroVMRequest>().Single().Microvm.ReadinessProbe.Should().Be(
            new Probe { Console = new ConsoleProbe { Regex = "HYPERCORE-GUEST-READY" }, PeriodSeconds = 1, FailureThreshold = 1 },
            "--wait-ready without a probe uses the default image's ready line");
    }

    [Test]
    public async Task Run_ReadinessNeverSucceeds_ExitsTimeoutWithTheProbesMessage()
    {
        var (exit, _, error) = StartVis("run", "--name", "web1", "--ready-console", "APP-READY", "--timeout", "30s");
        await Service.WatchStarted.WaitAsync(Patience);
        Service.SetPhase("default", "web1", "Running");
        Service.SetGuestReady("default", "web1", "False", "ProbeFailed", "readiness probe console /APP-READY/: no console line matched /APP-READY/ on this boot yet");
        await Eventually(() => error.ToString().Contains("GuestReady False"), "the not-ready line");

        Time.Advance(TimeSpan.FromSeconds(31));

        (await Finished(exit)).Should().Be(ExitCodes.Timeout, error.ToString());
        error.ToString().Should().Contain(
            "vis: timed out after 30s waiting for microvm default/web1 to reach Running with GuestReady (last phase: Running; " +
            "GuestReady: False (ProbeFailed): readiness probe console /APP-READY/: no console line matched /APP-READY/ on this boot yet)");
    }
}
