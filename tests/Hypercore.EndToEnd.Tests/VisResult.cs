namespace Hypercore.EndToEnd.Tests;

/// <summary>One finished `vis` process.</summary>
internal sealed record VisResult(IReadOnlyList<string> Args, int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed)
{
    public override string ToString() =>
        $"vis {string.Join(' ', Args)} exited {ExitCode} after {Elapsed.TotalSeconds:0.0} s\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
