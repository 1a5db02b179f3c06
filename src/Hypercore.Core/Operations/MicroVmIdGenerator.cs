using System.Security.Cryptography;

namespace Hypercore.Operations;

/// <summary>Makes ids for Create requests that leave the id empty. Replaceable so tests can predict ids.</summary>
public interface IMicroVmIdGenerator
{
    string NewId();
}

/// <summary>"vm-" plus 8 random hex digits: a valid DNS label, short enough to type.</summary>
internal sealed class RandomMicroVmIdGenerator : IMicroVmIdGenerator
{
    public string NewId() => "vm-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
}
