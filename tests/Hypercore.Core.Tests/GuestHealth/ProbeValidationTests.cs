using System.Text.RegularExpressions;
using Hypercore.MicroVms;

namespace Hypercore.Core.Tests.GuestHealth;

public sealed class ProbeValidationTests
{
    private static MicroVmSpec With(ProbeSpec? readiness = null, ProbeSpec? liveness = null, bool nic = false) => new()
    {
        Id = "a",
        Kernel = new KernelSpec { Image = "/k" },
        ReadinessProbe = readiness,
        LivenessProbe = liveness,
        Interfaces = nic ? [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24" }] : [],
    };

    [Test]
    public void Validate_GoodProbes_NoErrors()
    {
        MicroVmSpecValidator.Validate(With(
            new ProbeSpec { Console = new ConsoleProbe("HYPERCORE-GUEST-READY") },
            new ProbeSpec { HttpGet = new HttpGetProbe(8080, "/healthz?x=1"), PeriodSeconds = 5 }, nic: true)).Should().BeEmpty();
    }

    [Test]
    public void Validate_BadRegex_NamesTheField()
    {
        MicroVmSpecValidator.Validate(With(new ProbeSpec { Console = new ConsoleProbe("(unclosed") }))
            .Should().ContainSingle().Which.Should().StartWith("readiness_probe.console.regex \"(unclosed\" is not a valid .NET regular expression");
    }

    [Test]
    public void Validate_BacktrackingOnlyConstruct_RefusedSayingWhy()
    {
        MicroVmSpecValidator.Validate(With(new ProbeSpec { Console = new ConsoleProbe(@"(a)\1") }))
            .Should().ContainSingle().Which.Should().Contain("linear-time matcher does not support (backreferences");
    }

    [Test]
    public void ProbeRegex_CatastrophicPatternOnALongLine_MatchesInLinearTime()
    {
        var regex = MicroVmSpecValidator.ProbeRegex("^(a+)+$");
        regex.Options.Should().HaveFlag(RegexOptions.NonBacktracking);
        regex.MatchTimeout.Should().Be(MicroVmSpecValidator.ProbeRegexTimeout);

        // The same engine with a budget no load can exhaust: the probe's 100 ms is wall-clock time, which a loaded test
        // machine can take from even a linear scan of 50,000 characters (it did, once in a dozen runs at load 30). A
        // backtracking engine would need about 2^50,000 steps here, so it still fails this test, by timing out.
        var unhurried = new Regex(regex.ToString(), regex.Options, TimeSpan.FromSeconds(30));
        unhurried.IsMatch(new string('a', 50_000) + "!").Should().BeFalse("NonBacktracking never explodes (a backtracking engine would time out)");
    }

    [Test]
    public void Validate_NoCheckOrTwoChecks_Refused()
    {
        MicroVmSpecValidator.Validate(With(liveness: new ProbeSpec()))
            .Should().ContainSingle().Which.Should().Be("liveness_probe needs exactly one of console, tcp_socket or http_get, got 0");
        MicroVmSpecValidator.Validate(With(new ProbeSpec { Console = new ConsoleProbe("x"), TcpSocket = new TcpSocketProbe(22) }, nic: true))
            .Should().ContainSingle().Which.Should().Be("readiness_probe needs exactly one of console, tcp_socket or http_get, got 2");
    }

    [Test]
    public void Validate_OutOfRangeNumbers_EachNamed()
    {
        var errors = MicroVmSpecValidator.Validate(With(
            new ProbeSpec { TcpSocket = new TcpSocketProbe(0), PeriodSeconds = 0, TimeoutSeconds = 0, FailureThreshold = 0, InitialDelaySeconds = -1 }, nic: true));

        errors.Should().BeEquivalentTo(
            "readiness_probe.tcp_socket.port must be between 1 and 65535, got 0",
            "readiness_probe.initial_delay_seconds must be between 0 and 3600, got -1",
            "readiness_probe.period_seconds must be between 1 and 3600, got 0",
            "readiness_probe.timeout_seconds must be between 1 and 3600, got 0",
            "readiness_probe.failure_threshold must be between 1 and 1000, got 0");
    }

    [Test]
    public void Validate_NetworkProbeWithoutInterface_SaysToAddOneOrUseTheConsole()
    {
        MicroVmSpecValidator.Validate(With(new ProbeSpec { TcpSocket = new TcpSocketProbe(22) }))
            .Should().ContainSingle().Which.Should().Contain("no network interface").And.Contain("console probe");
    }

    [Test]
    public void Validate_HttpPathNotAbsolute_Refused()
    {
        MicroVmSpecValidator.Validate(With(new ProbeSpec { HttpGet = new HttpGetProbe(80, "healthz") }, nic: true))
            .Should().ContainSingle().Which.Should().StartWith("readiness_probe.http_get.path \"healthz\" must be an absolute URL path");
    }

    [Test]
    public void Equals_ProbeChanged_SpecDiffers()
    {
        var a = With(new ProbeSpec { Console = new ConsoleProbe("x") });
        (a == (a with { ReadinessProbe = new ProbeSpec { Console = new ConsoleProbe("x") } })).Should().BeTrue();
        (a == (a with { ReadinessProbe = new ProbeSpec { Console = new ConsoleProbe("y") } })).Should().BeFalse();
        (a == (a with { LivenessProbe = new ProbeSpec { Console = new ConsoleProbe("x") } })).Should().BeFalse();
    }
}
