using Hypercore.Consoles;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Logs;

/// <summary>
/// Streams a console log file and its rotated part (<see cref="ConsoleLogFiles"/>): optionally only the last N
/// lines (taken from <c>.1</c> too when the current part has fewer), then (when following) whatever is appended, by
/// polling the file on the injected <see cref="TimeProvider"/>. A rotation while following is seen as <c>.1</c>
/// changing: the bytes not read yet are read from <c>.1</c> (a copy at the same offsets), then the current part from
/// its start. A file that shrinks without a rotation (a restarted VM's fresh log) is read again from its start.
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

    /// <summary>Whether there is anything to stream for <paramref name="path"/> (the log or its rotated part).</summary>
    public static bool Exists(string path) => File.Exists(path) || File.Exists(ConsoleLogFiles.Rotated(path));

    /// <summary>Sends chunks to <paramref name="send"/> until the end of the file, or until cancelled when following.</summary>
    public async Task StreamAsync(string path, int tailLines, bool follow, Func<ReadOnlyMemory<byte>, Task> send, CancellationToken ct)
    {
        var options = _options.CurrentValue;
        var buffer = new byte[options.LogChunkBytes];
        var rotatedPath = ConsoleLogFiles.Rotated(path);
        var rotatedStamp = Stamp(rotatedPath);
        await using var file = OpenOrEmpty(path);

        // The earlier part first: all of it, or the lines the current part cannot supply.
        long start = 0;
        var fromRotated = int.MaxValue;
        if (tailLines > 0)
        {
            (start, var found) = await FindTailAsync(file, tailLines, ct);
            fromRotated = tailLines - found;
        }

        if (fromRotated > 0 && Open(rotatedPath) is { } earlier)
        {
            await using (earlier)
            {
                earlier.Position = tailLines > 0 ? (await FindTailAsync(earlier, fromRotated, ct)).Offset : 0;
                await CopyToEndAsync(earlier, buffer, send, ct);
            }
        }

        file.Position = start;
        var shrunkPolls = 0;
        while (true)
        {
            await CopyToEndAsync(file, buffer, send, ct);
            if (!follow)
            {
                return;
            }

            await Task.Delay(options.LogPollInterval, _time, ct);
            var stamp = Stamp(rotatedPath);
            if (stamp != rotatedStamp)
            {
                // Rotated (copy, truncate, then rename): the unread rest is in .1 at the offsets we were at.
                rotatedStamp = stamp;
                if (Open(rotatedPath) is { } rotated)
                {
                    await using (rotated)
                    {
                        if (rotated.Length > file.Position)
                        {
                            rotated.Position = file.Position;
                            await CopyToEndAsync(rotated, buffer, send, ct);
                        }
                    }
                }

                file.Position = 0;
                shrunkPolls = 0;
            }
            else if (file.Length < file.Position && ++shrunkPolls > 1)
            {
                // Shrunk for two polls and no rotation behind it (a rotation renames .1 right after truncating):
                // truncated or replaced in place, start over.
                file.Position = 0;
                shrunkPolls = 0;
            }
        }
    }

    private static async Task CopyToEndAsync(FileStream file, byte[] buffer, Func<ReadOnlyMemory<byte>, Task> send, CancellationToken ct)
    {
        int read;
        while ((read = await file.ReadAsync(buffer, ct)) > 0)
        {
            await send(buffer.AsMemory(0, read));
        }
    }

    private static FileStream? Open(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 4096, useAsync: true);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The current part; when only .1 is left (deleted log), an empty stream so the rotated part still shows.</summary>
    private static FileStream OpenOrEmpty(string path) =>
        File.Exists(path) || !File.Exists(ConsoleLogFiles.Rotated(path))
            ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 4096, useAsync: true)
            : new FileStream("/dev/null", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 4096, useAsync: true);

    /// <summary>Identity of the rotated part: a rotation renames a fresh copy over it, which changes its write time.</summary>
    private static (bool Exists, long Length, DateTime Written) Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (true, info.Length, info.LastWriteTimeUtc) : (false, 0, default);
    }

    /// <summary>Offset where the last <paramref name="lines"/> lines begin, and how many lines that is (fewer when the file has fewer).</summary>
    public static async Task<(long Offset, int Found)> FindTailAsync(Stream file, int lines, CancellationToken ct)
    {
        var offset = await FindTailOffsetAsync(file, lines, ct);
        if (offset > 0 || lines <= 0)
        {
            return (offset, Math.Max(lines, 0));
        }

        // The whole file: count its lines (a last line without '\n' counts too).
        file.Position = 0;
        var block = new byte[8192];
        int read, count = 0;
        var last = (byte)'\n';
        while ((read = await file.ReadAsync(block, ct)) > 0)
        {
            count += block.AsSpan(0, read).Count((byte)'\n');
            last = block[read - 1];
        }

        return (0, Math.Min(lines, count + (last != (byte)'\n' ? 1 : 0)));
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
