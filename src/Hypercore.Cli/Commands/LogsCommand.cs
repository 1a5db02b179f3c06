using System.CommandLine;
using System.Text;

namespace Hypercore.Cli.Commands;

/// <summary>`vis logs ID [-f] [--tail N]`: the VM's serial console.</summary>
internal static class LogsCommand
{
    public static Command Build(Cli.CommandRunner runner)
    {
        var command = new Command("logs", "Print a microVM's serial console output");
        var id = SharedOptions.Id();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new output until interrupted" };
        var tail = SharedOptions.WholeNumber("--tail", "a whole number of lines (0 for all)", "Only the last N lines already written (0 = all)", "N");
        command.Add(id);
        command.Add(follow);
        command.Add(tail);
        runner.SetAction(command, async (inv, ct) =>
        {
            var lines = inv.Parse.GetValue(tail) ?? 0;
            if (lines < 0)
            {
                throw new UsageException($"--tail must be zero or more lines, got {lines}");
            }

            // Console output is UTF-8 that may be split anywhere between chunks: a stateful decoder keeps characters whole.
            var decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
            var chars = new char[8192];
            try
            {
                await foreach (var chunk in inv.Client.StreamLogsAsync(inv.Parse.GetRequiredValue(id), inv.Parse.GetValue(follow), lines, inv.Namespace, ct))
                {
                    Write(inv.Out, decoder, chunk.Span, ref chars, flush: false);
                    await inv.Out.FlushAsync(ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested && inv.Parse.GetValue(follow))
            {
                // Ctrl+C is how `logs -f` normally ends.
            }

            Write(inv.Out, decoder, [], ref chars, flush: true);
            await inv.Out.FlushAsync(CancellationToken.None);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Write(TextWriter output, Decoder decoder, ReadOnlySpan<byte> bytes, ref char[] chars, bool flush)
    {
        var needed = decoder.GetCharCount(bytes, flush);
        if (needed > chars.Length)
        {
            chars = new char[needed];
        }

        var count = decoder.GetChars(bytes, chars, flush);
        output.Write(chars, 0, count);
    }
}
