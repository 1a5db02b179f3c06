namespace Hypercore.Cli;

/// <summary>What the CLI takes from its surroundings, so tests can run it in-process with their own.</summary>
public sealed record CliEnvironment
{
    /// <summary>Environment variable lookup (VIS_HOST).</summary>
    public Func<string, string?> GetVariable { get; init; } = _ => null;

    /// <summary>True when stderr is a terminal: waits then draw a spinner instead of plain phase lines.</summary>
    public bool ErrorIsTerminal { get; init; }

    /// <summary>Clock for AGE, waits and the spinner.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Whether Ctrl+C cancels the running command (only for a real process; tests leave it off).</summary>
    public bool HandleCtrlC { get; init; }

    /// <summary>The surroundings of the real `vis` process.</summary>
    public static CliEnvironment FromProcess() => new()
    {
        GetVariable = Environment.GetEnvironmentVariable,
        ErrorIsTerminal = !Console.IsErrorRedirected,
        TimeProvider = TimeProvider.System,
        HandleCtrlC = true,
    };
}
