using System.Text;
using Hypercore.Consoles;

namespace Hypercore.GuestHealth;

/// <summary>
/// Follows one VM's console log from an offset (the start of the current boot), returning whole lines as they
/// arrive. Rotation is copy-truncate (<see cref="ConsoleLogFiles"/>): after one rotation since the last read the bytes
/// not read yet are in <c>console.log.1</c> at the same offsets, after more <c>.1</c> is a later part read from its
/// start (<see cref="ConsoleLogFiles.RotationCount"/>); the log is then followed from 0. On the first read, a log shorter
/// than the offset counts as rotated once. The file is opened read-only, shared, and never through a link.
/// </summary>
public sealed class ConsoleTail
{
    /// <summary>Most read per call; a guest printing faster than this is read over several probes.</summary>
    public const int MaxReadBytes = 4 * 1024 * 1024;

    /// <summary>A line longer than this is cut and matched in pieces (a guest that never prints a newline).</summary>
    public const int MaxLineChars = 16 * 1024;

    private readonly string _path;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly StringBuilder _partial = new();
    private long _offset;
    private long? _rotations; // ConsoleLogFiles.RotationCount at the last read

    public ConsoleTail(string path, long offset)
    {
        _path = path;
        _offset = Math.Max(0, offset);
    }

    public string Path => _path;

    /// <summary>Bytes of the current log consumed so far.</summary>
    public long Offset => _offset;

    /// <summary>Whole lines written since the last call (without their line ends). Missing file: none yet.</summary>
    public IReadOnlyList<string> ReadLines()
    {
        var lines = new List<string>();
        var info = new FileInfo(_path);
        if (!info.Exists || (info.Attributes & FileAttributes.ReparsePoint) != 0)
        {
            return lines;
        }

        using var log = Open(_path);
        if (log is null)
        {
            return lines;
        }

        // Under the gate the rotation holds from copy to count (it runs in this process): the count, .1 and the log's
        // length and bytes belong together, so a shorter log with no rotation counted was replaced, not half rotated.
        lock (ConsoleLogFiles.RotationGate(_path))
        {
            var budget = MaxReadBytes;
            var count = ConsoleLogFiles.RotationCount(_path);
            var since = _rotations is { } before ? Math.Max(0, count - before) : (log.Length < _offset ? 1 : 0);
            _rotations = count;
            if (since > 0 || log.Length < _offset)
            {
                // One rotation since the last read: the rest of what we were reading is in .1 at the same offsets. More:
                // .1 is a later part, new to us from its start, and the rest of ours is gone. Shorter with no rotation:
                // replaced; start over. Whatever was cut off mid-line is dropped, never joined to another line.
                var from = since == 1 ? _offset : 0;
                var rotated = ConsoleLogFiles.Rotated(_path);
                if (since != 1)
                {
                    DropPartialLine();
                }

                if (since > 0 && new FileInfo(rotated) is { Exists: true } r && (r.Attributes & FileAttributes.ReparsePoint) == 0)
                {
                    using var part = Open(rotated);
                    if (part is not null && part.Length > from)
                    {
                        budget -= ReadFrom(part, from, budget, lines);
                    }
                }

                _offset = 0;
            }

            _offset += ReadFrom(log, _offset, budget, lines);
        }

        return lines;
    }

    private void DropPartialLine()
    {
        _partial.Clear();
        _decoder.Reset();
    }

    private static FileStream? Open(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    private int ReadFrom(FileStream stream, long from, int budget, List<string> lines)
    {
        var length = stream.Length;
        if (length <= from || budget <= 0)
        {
            return 0;
        }

        stream.Seek(from, SeekOrigin.Begin);
        var want = (int)Math.Min(budget, length - from);
        var bytes = new byte[Math.Min(want, 64 * 1024)];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var total = 0;
        while (total < want)
        {
            var n = stream.Read(bytes, 0, Math.Min(bytes.Length, want - total));
            if (n == 0)
            {
                break;
            }

            total += n;
            var count = _decoder.GetChars(bytes, 0, n, chars, 0);
            for (var i = 0; i < count; i++)
            {
                var c = chars[i];
                if (c == '\n')
                {
                    lines.Add(TakeLine());
                }
                else if (c != '\r')
                {
                    _partial.Append(c);
                    if (_partial.Length >= MaxLineChars)
                    {
                        lines.Add(TakeLine());
                    }
                }
            }
        }

        return total;
    }

    private string TakeLine()
    {
        var line = _partial.ToString();
        _partial.Clear();
        return line;
    }
}
