using Hypercore.Consoles;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Logs;

/// <summary>
/// Streams a console log file and its rotated part (<see cref="ConsoleLogFiles"/>): optionally only the last N
/// lines (taken from <c>.1</c> too when the current part has fewer), then (when following) whatever is appended, by
/// polling the file on the injected <see cref="TimeProvider"/>. Where to read after a rotation, or after the log shrank
/// without one, is <see cref="ConsoleLogFiles.Resume"/>'s rule. Reads of the current part hold
/// <see cref="ConsoleLogFiles.RotationGate"/>, which the rotation holds from copy to count (the rotator runs in this
/// process), so no read sees a rotation half done. Both parts are opened with <see cref="ConsoleLogFiles.OpenRead"/>:
/// never through a link (<see cref="Hypercore.HostAccess.NotAPlainFileException"/>, which ends the stream).
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
        var gate = ConsoleLogFiles.RotationGate(path);
        await using var file = OpenCurrent(path);

        // Where to start, in the earlier part and in this one: found with no rotation in between (tried again if one
        // happened), so the offsets belong to the files they were found in.
        while (true)
        {
            long rotations;
            FileStream? earlier;
            lock (gate)
            {
                rotations = ConsoleLogFiles.RotationCount(path);
                earlier = Open(rotatedPath);
            }

            await using (earlier)
            {
                long start = 0, earlierStart = 0;
                var fromRotated = int.MaxValue;
                if (tailLines > 0 && file is not null)
                {
                    (start, var found) = await FindTailAsync(file, tailLines, ct);
                    fromRotated = tailLines - found;
                }

                if (fromRotated > 0 && earlier is not null && tailLines > 0)
                {
                    earlierStart = (await FindTailAsync(earlier, fromRotated, ct)).Offset;
                }

                bool unchanged;
                lock (gate)
                {
                    unchanged = ConsoleLogFiles.RotationCount(path) == rotations;
                }

                if (!unchanged)
                {
                    continue;
                }

                // The earlier part first: all of it, or the lines the current part cannot supply (.1 is only ever
                // replaced by a rename, so this handle keeps the part the offsets were found in).
                if (fromRotated > 0 && earlier is not null)
                {
                    earlier.Position = earlierStart;
                    await CopyToEndAsync(earlier, buffer, send, ct);
                }

                await FollowAsync(file, path, start, rotations, follow, options.LogPollInterval, buffer, send, ct);
                return;
            }
        }
    }

    /// <summary>
    /// Reads the current part from <paramref name="position"/> to its end, and on when following. Each chunk is read
    /// under the rotation gate right after <see cref="ConsoleLogFiles.Resume"/> says where, so a chunk never comes from a
    /// log truncated after that look; the rest of a rotated part is sent from <c>.1</c> (renamed over, never rewritten,
    /// so the handle keeps the part it opened) before the current part is read again.
    /// </summary>
    private async Task FollowAsync(
        FileStream? file, string path, long position, long rotations, bool follow, TimeSpan poll,
        byte[] buffer, Func<ReadOnlyMemory<byte>, Task> send, CancellationToken ct)
    {
        var rotatedPath = ConsoleLogFiles.Rotated(path);
        var gate = ConsoleLogFiles.RotationGate(path);
        while (true)
        {
            while (true)
            {
                FileStream? rest = null;
                long restFrom = 0;
                var read = 0;
                lock (gate)
                {
                    var length = file is null ? position : RandomAccess.GetLength(file.SafeFileHandle);
                    var next = ConsoleLogFiles.Resume(path, rotations, position, length);
                    rotations = next.Rotations;
                    position = next.From;
                    if (next.RotatedFrom is { } from)
                    {
                        rest = Open(rotatedPath);
                        restFrom = from;
                    }
                    else if (file is not null)
                    {
                        read = RandomAccess.Read(file.SafeFileHandle, buffer, position);
                        position += read;
                    }
                }

                if (rest is not null)
                {
                    await using (rest)
                    {
                        if (rest.Length > restFrom)
                        {
                            rest.Position = restFrom;
                            await CopyToEndAsync(rest, buffer, send, ct);
                        }
                    }

                    continue;
                }

                if (read == 0)
                {
                    break;
                }

                await send(buffer.AsMemory(0, read));
            }

            if (!follow)
            {
                return;
            }

            await Task.Delay(poll, _time, ct);
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

    /// <summary>A part of the log, never through a link (<see cref="ConsoleLogFiles.OpenRead"/>); null when missing.</summary>
    private static FileStream? Open(string path) => ConsoleLogFiles.OpenRead(path);

    /// <summary>The current part; null when only .1 is left (a deleted log), so the rotated part still shows.</summary>
    private static FileStream? OpenCurrent(string path) =>
        ConsoleLogFiles.OpenRead(path) ?? (File.Exists(ConsoleLogFiles.Rotated(path))
            ? null
            : throw new FileNotFoundException($"console log {path} is gone", path));

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
