using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Cli.Tests;

/// <summary>Runs `vis` in-process with captured output and a fake clock.</summary>
public sealed class CliHarness(FakeTimeProvider time, IReadOnlyDictionary<string, string>? variables = null)
{
    public Task<CliResult> RunAsync(params string[] args) => RunAsync(args, CancellationToken.None);

    public async Task<CliResult> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var output = new SyncWriter();
        var error = new SyncWriter();
        var environment = new CliEnvironment
        {
            GetVariable = name => variables is not null && variables.TryGetValue(name, out var v) ? v : null,
            ErrorIsTerminal = false,
            TimeProvider = time,
        };
        var code = await Cli.RunAsync(args, output, error, environment, cancellationToken);
        return new CliResult(code, output.ToString(), error.ToString());
    }

    /// <summary>Starts a run and returns its task plus the live writers, for commands that wait.</summary>
    public (Task<int> Exit, SyncWriter Out, SyncWriter Err) Start(params string[] args)
    {
        var output = new SyncWriter();
        var error = new SyncWriter();
        var environment = new CliEnvironment { GetVariable = _ => null, TimeProvider = time };
        return (Task.Run(() => Cli.RunAsync(args, output, error, environment)), output, error);
    }
}

public sealed record CliResult(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Err}";
}

/// <summary>A StringWriter safe to read while the CLI writes from another thread.</summary>
public sealed class SyncWriter : StringWriter
{
    private readonly Lock _lock = new();

    public override void Write(char value)
    {
        lock (_lock)
        {
            base.Write(value);
        }
    }

    public override void Write(char[] buffer, int index, int count)
    {
        lock (_lock)
        {
            base.Write(buffer, index, count);
        }
    }

    public override void Write(string? value)
    {
        lock (_lock)
        {
            base.Write(value);
        }
    }

    public override void WriteLine(string? value)
    {
        lock (_lock)
        {
            base.WriteLine(value);
        }
    }

    public override string ToString()
    {
        lock (_lock)
        {
            return base.ToString();
        }
    }
}
