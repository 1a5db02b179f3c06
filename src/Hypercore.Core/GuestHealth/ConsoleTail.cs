using System.Text;
using Hypercore.Consoles;

namespace Hypercore.GuestHealth;

/// <summary>
/// Follows one VM's console log from an offset (the start of the current boot), returning whole lines as they
/// arrive. Rotation is copy-truncate (<see cref="ConsoleLogFiles"/>): when the log is shorter than the offset the
/// bytes not read yet are in <c>console.log.1</c> at the same offsets, so those are read first and the log is then
/// followed from 0. The file is opened read-only, shared, and never through a link.
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
    private (bool Exists, long Length, DateTime Written)? _rotatedStamp;

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

        // Under the gate the rotation holds from copy to rename (it runs in this process): .1's stamp and the log's
        // length and bytes belong together, so a shorter log with the same .1 was replaced, not half rotated.
        lock (ConsoleLogFiles.RotationGate(_path))
        {
            var budget = MaxReadBytes;
            var rotated = ConsoleLogFiles.Rotated(_path);
            var stamp = Stamp(rotated);
            var wasRotated = _rotatedStamp is { } before ? before != stamp : log.Length < _offset;
            _rotatedStamp = stamp;
            if (wasRotated || log.Length < _offset)
            {
                // Rotated since the last read (copy, truncate, then rename over .1, which changes .1's stamp): the rest of
                // what we were reading is in .1 at the same offsets. Shorter with no rotation: replaced; start over.
                if (wasRotated && new FileInfo(rotated) is { Exists: true } r && (r.Attributes & FileAttributes.ReparsePoint) == 0)
                {
                    using var part = Open(rotated);
                    if (part is not null && part.Length > _offset)
                    {
                        budget -= ReadFrom(part, _offset, budget, lines);
                    }
                }

                _offset = 0;
            }

            _offset += ReadFrom(log, _offset, budget, lines);
        }

        return lines;
    }

    /// <summary>Identity of the rotated part: a rotation renames a fresh copy over it, which changes its write time.</summary>
    private static (bool Exists, long Length, DateTime Written) Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (true, info.Length, info.LastWriteTimeUtc) : (false, 0, default);
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
