using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using Grpc.Core;
using Hypercore.Cli.Commands;
using Hypercore.Client;

namespace Hypercore.Cli;

/// <summary>The `vis` command line, callable in-process (tests) as well as from <c>Main</c>.</summary>
public static class Cli
{
    /// <summary>Runs one command line and returns its exit code (see <see cref="ExitCodes"/>). Never throws.</summary>
    public static async Task<int> RunAsync(
        string[] args, TextWriter output, TextWriter error, CliEnvironment? environment = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        environment ??= new CliEnvironment();
        var runner = new CommandRunner(output, error, environment);
        var root = runner.BuildRoot();
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction)
        {
            foreach (var problem in parse.Errors)
            {
                error.WriteLine($"vis: {problem.Message}");
            }

            error.WriteLine("Run 'vis --help' for usage.");
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = environment.HandleCtrlC ? TimeSpan.FromSeconds(2) : null,
        };
        try
        {
            return await parse.InvokeAsync(configuration, cancellationToken);
        }
        catch (Exception ex)
        {
            // Actions map their own errors; this is only for a fault in the command line library itself.
            error.WriteLine($"vis: {ex.Message}");
            return ExitCodes.Error;
        }
    }

    /// <summary>Builds the command tree and runs actions with one error-to-exit-code mapping.</summary>
    internal sealed class CommandRunner(TextWriter output, TextWriter error, CliEnvironment environment)
    {
        public GlobalOptions Globals { get; } = new();

        public RootCommand BuildRoot()
        {
            var root = new RootCommand("vis: create and manage microVMs on a Hypercore node (vistarad).");
            Globals.AddTo(root);
            root.Add(CreateCommands.Run(this));
            root.Add(CreateCommands.Create(this));
            root.Add(QueryCommands.Get(this));
            root.Add(QueryCommands.List(this));
            root.Add(QueryCommands.Watch(this));
            root.Add(LifecycleCommands.Delete(this));
            root.Add(LifecycleCommands.Start(this));
            root.Add(LifecycleCommands.Stop(this));
            root.Add(LifecycleCommands.Pause(this));
            root.Add(LifecycleCommands.Resume(this));
            root.Add(LogsCommand.Build(this));
            root.Add(ImageCommands.Build(this)); // images (issue 11)
            root.Add(NodeCommand.Build(this)); // Kubernetes issue 13: node capacity
            root.Add(SnapshotCommands.Build(this)); // snapshots

            var help = root.Options.OfType<HelpOption>().Single();
            if (help.Action is HelpAction builtIn)
            {
                help.Action = new HelpWithExitCodes(builtIn);
            }

            return root;
        }

        public void SetAction(Command command, Func<Invocation, CancellationToken, Task<int>> handler) =>
            command.SetAction((parse, ct) => RunAsync(parse, handler, ct));

        private async Task<int> RunAsync(ParseResult parse, Func<Invocation, CancellationToken, Task<int>> handler, CancellationToken ct)
        {
            using var invocation = new Invocation(parse, Globals, output, error, environment);
            try
            {
                return await handler(invocation, ct);
            }
            catch (UsageException ex)
            {
                return Fail(ExitCodes.Usage, ex.Message);
            }
            catch (MicroVmFailedException ex)
            {
                return Fail(ExitCodes.VmFailed, ex.Message);
            }
            catch (TimeoutException ex)
            {
                return Fail(ExitCodes.Timeout, ex.Message);
            }
            catch (RpcException ex)
            {
                return ex.StatusCode switch
                {
                    StatusCode.NotFound => Fail(ExitCodes.NotFound, ex.Status.Detail),
                    StatusCode.AlreadyExists => Fail(ExitCodes.AlreadyExists, ex.Status.Detail),
                    StatusCode.InvalidArgument or StatusCode.OutOfRange => Fail(ExitCodes.Usage, ex.Status.Detail),
                    StatusCode.FailedPrecondition => Fail(ExitCodes.FailedPrecondition, ex.Status.Detail),
                    StatusCode.Unavailable => Fail(ExitCodes.Unavailable, $"cannot reach vistarad at {Describe(invocation)}: {Innermost(ex)}"),
                    _ when IsTlsFailure(ex) => Fail(ExitCodes.Unavailable,
                        $"cannot reach vistarad at {Describe(invocation)}: TLS failed: {Innermost(ex)} (check --tls-ca, --tls-cert and --tls-key)"),
                    StatusCode.Unauthenticated or StatusCode.PermissionDenied => Fail(ExitCodes.Denied, $"{ex.StatusCode}: {ex.Status.Detail}"),
                    _ => Fail(ExitCodes.Error, $"{ex.StatusCode}: {ex.Status.Detail}"),
                };
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return Fail(ExitCodes.Interrupted, "interrupted");
            }
            catch (Exception ex)
            {
                return Fail(ExitCodes.Error, ex.Message);
            }
        }

        private int Fail(int code, string message)
        {
            error.WriteLine($"vis: {message}");
            error.Flush();
            return code;
        }

        private static string Describe(Invocation invocation) =>
            invocation.HostText.StartsWith(HypercoreAddress.UnixScheme, StringComparison.OrdinalIgnoreCase) ? invocation.HostText
            : invocation.Address is { } address ? address.GetLeftPart(UriPartial.Authority) : invocation.HostText;

        /// <summary>A TLS handshake that failed (untrusted daemon certificate, refused client certificate): gRPC says Internal.</summary>
        private static bool IsTlsFailure(RpcException ex)
        {
            for (var inner = ex.Status.DebugException; inner is not null; inner = inner.InnerException)
            {
                if (inner is System.Security.Authentication.AuthenticationException)
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>The socket's own words ("Connection refused (127.0.0.1:9090)") beat gRPC's "Error connecting to subchannel."</summary>
        private static string Innermost(RpcException ex)
        {
            Exception? inner = ex.Status.DebugException;
            while (inner?.InnerException is not null)
            {
                inner = inner.InnerException;
            }

            return inner?.Message is { Length: > 0 } message ? message : ex.Status.Detail;
        }
    }

    /// <summary>The built-in help, followed by the exit codes on the root command's page.</summary>
    private sealed class HelpWithExitCodes(HelpAction inner) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var code = inner.Invoke(parseResult);
            if (parseResult.CommandResult.Command is RootCommand)
            {
                parseResult.InvocationConfiguration.Output.WriteLine(ExitCodes.HelpText);
            }

            return code;
        }
    }
}
