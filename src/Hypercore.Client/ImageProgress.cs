using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Client;

/// <summary>
/// Images (issue 11): a one-line progress view of a VM whose images are being pulled, from its ImageReady condition
/// ("ref: 12.0/64.0 MiB (12582912/67108864 bytes)" per image, "; "-separated), e.g.
/// <c>pulling 127.0.0.1:5000/hypercore/default:1 [#####.....] 12.0/64.0 MiB</c>. Null when the VM is not waiting for images.
/// </summary>
public static partial class ImageProgress
{
    public const string ConditionType = "ImageReady";

    [GeneratedRegex(@"^(?<ref>.+?): (?<mib>[0-9.]+/[0-9.]+ MiB) \((?<done>\d+)/(?<total>\d+) bytes\)$")]
    private static partial Regex Bytes();

    public static string? Describe(MicroVMStatus? status, int width = 20)
    {
        var condition = status?.Conditions.FirstOrDefault(c => c.Type == ConditionType);
        if (condition is null || condition.Status != "False")
        {
            return null;
        }

        if (condition.Reason != "Pulling")
        {
            return $"{condition.Reason}: {condition.Message}";
        }

        var parts = condition.Message.Split("; ", StringSplitOptions.RemoveEmptyEntries).Select(part =>
        {
            var m = Bytes().Match(part);
            if (!m.Success)
            {
                return "pulling " + part;
            }

            var done = long.Parse(m.Groups["done"].Value, CultureInfo.InvariantCulture);
            var total = long.Parse(m.Groups["total"].Value, CultureInfo.InvariantCulture);
            var filled = total <= 0 ? 0 : (int)Math.Clamp(done * width / total, 0, width);
            return new StringBuilder("pulling ").Append(m.Groups["ref"].Value).Append(" [")
                .Append('#', filled).Append('.', width - filled).Append("] ").Append(m.Groups["mib"].Value).ToString();
        });
        return string.Join("; ", parts);
    }
}
