using System.Diagnostics;
using Google.Protobuf;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests;

/// <summary>The built `vis` executable, run as a real process against the fake daemon.</summary>
public sealed class ProcessTests : FakeDaemonTest
{
    [Test]
    public async Task VisExecutable_GetJson_PrintsMicroVmAndExitsZero()
    {
        var stored = Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } }, phase: "Running");

        var result = await RunVisAsync("--host", Daemon.Host, "get", "web1", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        JsonParser.Default.Parse<MicroVM>(result.Out).Should().Be(stored);
    }

    [Test]
    public async Task VisExecutable_Missing_ExitsNotFoundWithMessageOnStderr()
    {
        var result = await RunVisAsync("--host", Daemon.Host, "get", "ghost");

        result.ExitCode.Should().Be(ExitCodes.NotFound, result.ToString());
        result.Err.Should().Be("vis: microvm ghost not found\n");
        result.Out.Should().BeEmpty();
    }

    [Test]
    public async Task VisExecutable_RunMemoryNotANumber_SaysWhatWasExpected_ExitsUsage()
    {
        var result = await RunVisAsync("--host", Daemon.Host, "run", "--name", "web1", "--memory", "abc");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().StartWith("vis: --memory: expected a whole number of MiB, got 'abc'\n").And.NotContain("System.");
        Service.ReceivedOf<CreateMicroVMRequest>().Should().BeEmpty();
    }

    [Test]
    public async Task VisExecutable_Help_DocumentsExitCodes()
    {
        var result = await RunVisAsync("--help");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Contain("Exit codes:").And.Contain("7    daemon unreachable").And.Contain("8    the VM reached Failed");
    }

    [Test]
    public async Task VisExecutable_WatchInterruptedWithSigint_ExitsZero()
    {
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } }, phase: "Running");
        using var process = Process.Start(WithDefaultSigint(StartInfo("--host", Daemon.Host, "watch")))!;
        try
        {
            // Reading the first event proves the watch is up and printing before the signal is sent.
            var header = await process.StandardOutput.ReadLineAsync().WaitAsync(Patience);
            var first = await process.StandardOutput.ReadLineAsync().WaitAsync(Patience);
            header.Should().StartWith("EVENT");
            first.Should().MatchRegex(@"^ADDED\s+web1\s+default");
            var rest = process.StandardOutput.ReadToEndAsync();

            using (var kill = Process.Start("kill", ["-s", "INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            {
                await kill.WaitForExitAsync();
            }

            using var cts = new CancellationTokenSource(Patience);
            await process.WaitForExitAsync(cts.Token);
            process.ExitCode.Should().Be(0, await process.StandardError.ReadToEndAsync());
            (await rest).Should().BeEmpty();
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>
    /// Runs the CLI from its own build output (src/Hypercore.Cli/bin/&lt;configuration&gt;/&lt;tfm&gt;), where its
    /// deps.json and dependencies are exactly what `vis` ships with; the copy in this test's output shares a
    /// folder with ASP.NET Core assemblies and would not prove that.
    /// </summary>
    private static async Task<CliResult> RunVisAsync(params string[] args)
    {
        using var process = Process.Start(StartInfo(args))!;
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(Patience);
            await process.WaitForExitAsync(cts.Token);
            return new CliResult(process.ExitCode, await output, await error);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>
    /// The same start with SIGINT at its default disposition, as in a terminal's foreground job. A process inherits an
    /// ignored SIGINT (a non-interactive shell ignores it in every background job: `bash .ci/run &`), .NET keeps a signal
    /// that was ignored at start ignored, and then no Ctrl+C reaches `vis` at all — the test timed out after a minute in
    /// such a CI run (reproduced with `trap '' INT`). coreutils' env resets it, then execs the same program (same pid).
    /// </summary>
    private static ProcessStartInfo WithDefaultSigint(ProcessStartInfo start)
    {
        var wrapped = new ProcessStartInfo("env")
        {
            RedirectStandardOutput = start.RedirectStandardOutput,
            RedirectStandardError = start.RedirectStandardError,
            ArgumentList = { "--default-signal=INT", start.FileName },
        };
        foreach (var arg in start.ArgumentList)
        {
            wrapped.ArgumentList.Add(arg);
        }

        wrapped.Environment.Clear();
        foreach (var (name, value) in start.Environment)
        {
            wrapped.Environment[name] = value;
        }

        return wrapped;
    }

    private static ProcessStartInfo StartInfo(params string[] args)
    {
        var testOutput = new DirectoryInfo(Path.GetDirectoryName(typeof(ProcessTests).Assembly.Location)!);
        var (tfm, configuration) = (testOutput.Name, testOutput.Parent!.Name);
        var root = testOutput;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "HypercoreController.sln")))
        {
            root = root.Parent;
        }

        root.Should().NotBeNull("the tests run from inside the repository");
        var visDir = Path.Combine(root!.FullName, "src", "Hypercore.Cli", "bin", configuration, tfm);
        var apphost = Path.Combine(visDir, "vis");
        File.Exists(Path.Combine(visDir, "vis.dll")).Should().BeTrue($"the CLI is built to {visDir}");
        var start = File.Exists(apphost)
            ? new ProcessStartInfo(apphost)
            : new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(visDir, "vis.dll") } };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.Environment.Remove("VIS_HOST");
        return start;
    }
}
