using System.Globalization;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// The host TSC rate, for TCG guests. Under TCG, guest RDTSC returns host ticks, so the guest TSC runs at the
/// host rate; telling the guest kernel that rate (<c>tsc_early_khz=</c>) spares it the PIT calibration that fails
/// on a busy host (measured here: 6 of 6 parallel TCG boots hung after "tsc: Unable to calibrate against PIT").
/// </summary>
internal static class HostTsc
{
    /// <summary>kHz from /proc/cpuinfo's "cpu MHz" when the flags say the TSC is constant; null otherwise.</summary>
    public static int? ReadKhz(string cpuinfoPath = "/proc/cpuinfo")
    {
        try
        {
            return Parse(File.ReadAllText(cpuinfoPath));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    internal static int? Parse(string cpuinfo)
    {
        double? mhz = null;
        var constant = false;
        foreach (var line in cpuinfo.Split('\n'))
        {
            if (line.Length == 0 && mhz is not null)
            {
                break; // first processor block only
            }

            var colon = line.IndexOf(':');
            if (colon < 0)
            {
                continue;
            }

            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (key == "cpu MHz" && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var m))
            {
                mhz = m;
            }
            else if (key == "flags")
            {
                constant = value.Split(' ').Contains("constant_tsc");
            }
        }

        return constant && mhz is > 0 ? (int)Math.Round(mhz.Value * 1000) : null;
    }
}
