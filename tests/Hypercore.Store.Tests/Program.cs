using Hypercore.Store.Tests.Sqlite;

namespace Hypercore.Store.Tests;

/// <summary>
/// This assembly doubles as the child process of the crash test: <c>dotnet Hypercore.Store.Tests.dll crash-writer
/// &lt;database&gt; &lt;writers&gt; [&lt;checkpoint frames&gt;]</c>. Under the test runner Main is never called.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is [CrashWriter.Mode, var path, var writers] && int.TryParse(writers, out var count))
        {
            return await CrashWriter.RunAsync(path, count);
        }

        if (args is [CrashWriter.Mode, var path2, var writers2, var frames] && int.TryParse(writers2, out var count2) && int.TryParse(frames, out var checkpointFrames))
        {
            return await CrashWriter.RunAsync(path2, count2, checkpointFrames);
        }

        await Console.Error.WriteLineAsync($"usage: {CrashWriter.Mode} <database-path> <writers>  (otherwise run these tests with dotnet test)");
        return 2;
    }
}
