namespace Hypercore.Cli.Tests.Commands;

/// <summary>
/// Every numeric, duration and enum option of vis, given a bad value: the message names the option and what was
/// expected in the user's terms, never a .NET type (System.CommandLine's default names e.g. System.Nullable`1[System.Int32]).
/// </summary>
public sealed class ParseErrorTests : FakeDaemonTest
{
    [TestCase("run", "--memory", "abc", "--memory: expected a whole number of MiB, got 'abc'")]
    [TestCase("run", "--memory", "1.5", "--memory: expected a whole number of MiB, got '1.5'")]
    [TestCase("run", "--memory", "0", "--memory must be a positive number of MiB, got 0")]
    [TestCase("run", "--cpu", "two", "--cpu: expected a whole number of vCPUs, got 'two'")]
    [TestCase("run", "--cpu", "0", "--cpu must be at least 1, got 0")]
    [TestCase("run", "--disk", "1G", "--disk: expected a whole number of MiB (0 for no disk), got '1G'")]
    [TestCase("run", "--disk", "-1", "--disk must be zero or more MiB, got -1")]
    [TestCase("run", "--network", "eth0", "--network: expected a whole number of tap interfaces (0 for none), got 'eth0'")]
    [TestCase("create", "--memory", "99999999999", "--memory: expected a whole number of MiB, got '99999999999'")]
    [TestCase("create", "--restart-policy", "Sometimes", "--restart-policy must be one of Always, OnFailure, Never, got \"Sometimes\"")]
    [TestCase("run", "--timeout", "soon", "--timeout: \"soon\" is not a positive duration like 90s, 5m or 1h30m")]
    [TestCase("logs", "--tail", "last", "--tail: expected a whole number of lines (0 for all), got 'last'")]
    [TestCase("logs", "--tail", "-3", "--tail must be zero or more lines, got -3")]
    [TestCase("stop", "--timeout", "0s", "--timeout: \"0s\" is not a positive duration like 90s, 5m or 1h30m")]
    [TestCase("delete", "--timeout", "1x", "--timeout: \"1x\" is not a positive duration like 90s, 5m or 1h30m")]
    [TestCase("list", "-o", "xml", "'xml'")]
    public async Task BadValue_NamesTheOptionAndWhatWasExpected_ExitsUsage(string command, string option, string value, string expected)
    {
        string[] args = command switch
        {
            "run" or "create" => [command, "--name", "web9", option, value],
            "list" => [command, option, value],
            _ => [command, "web9", option, value],
        };

        var result = await Vis(args);

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().Contain(expected).And.NotContain("System.").And.NotContain("Int32").And.NotContain("expected type");
        Service.ReceivedOf<Contracts.VmApi.CreateMicroVMRequest>().Should().BeEmpty("nothing is sent for a bad command line");
    }
}
