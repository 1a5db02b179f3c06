using Microsoft.Extensions.Options;

namespace Hypercore.Api.Logs;

/// <summary>
/// Streams a console log file: optionally only its last N lines, then (when following) whatever is appended,
/// by polling the file on the injected <see cref="TimeProvider"/>. A file that shrinks (a restarted VM's fresh
/// log) is read again from its start.
/// </summary>
public sealed class ConsoleLogStreamer
{
    private readonly TimeProvider _time;
    private readonly IOptionsMonitor<HypercoreApiOptions> _options;

    public ConsoleLogStreamer(TimeProvider time, IOptionsMonitor<HypercoreApiOptions> options)
    {
        _time = time;
        _options = options;
    }

    /// <summary>Sends chunks to <paramref name="send"/> until the end of the file, or until cancelled when following.</summary>
    public async Task StreamAsync(string path, int tailLines, bool follow, Func<ReadOnlyMemory<byte>, Task> send, CancellationToken ct)
    {
        var options = _options.CurrentValue;
        var buffer = new byte[options.LogChunkBytes];
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 4096, useAsync: true);
        file.Position = tailLines > 0 ? await FindTailOffsetAsync(file, tailLines, ct) : 0;

        while (true)
        {
            int read;
            while ((read = await file.ReadAsync(buffer, ct)) > 0)
            {
                await send(buffer.AsMemory(0, read));
            }

            if (!follow)
            {
                return;
            }

            await Task.Delay(options.LogPollInterval, _time, ct);
            if (file.Length < file.Position)
            {
                file.Position = 0; // truncated or replaced in place: start over
            }
        }
    }

    /// <summary>
    /// Offset where the last <paramref name="lines"/> lines begin. A trailing newline ends the last line rather
    /// than starting an empty one. Scans backwards in blocks, so a large log is not read whole.
    /// </summary>
    public static async Task<long> FindTailOffsetAsync(Stream file, int lines, CancellationToken ct)
    {
        var length = file.Length;
        if (lines <= 0 || length == 0)
        {
            return 0;
        }

        var block = new byte[8192];
        var end = length;
        var newlines = 0;
        var skipLast = true; // the byte at length-1, if '\n', terminates the last line
        while (end > 0)
        {
            var start = Math.Max(0, end - block.Length);
            var count = (int)(end - start);
            file.Position = start;
            await file.ReadExactlyAsync(block.AsMemory(0, count), ct);
            for (var i = count - 1; i >= 0; i--)
            {
                if (block[i] != (byte)'\n')
                {
                    skipLast = false;
                    continue;
                }

                if (skipLast)
                {
                    skipLast = false;
                    continue;
                }

                if (++newlines == lines)
                {
                    return start + i + 1;
                }
            }

            end = start;
        }

        return 0;
    }
}
