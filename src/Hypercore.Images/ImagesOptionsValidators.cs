using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Microsoft.Extensions.Options;

namespace Hypercore.Images;

/// <summary>Fails the daemon at start when a registry setting is unusable, naming it (rule 4).</summary>
public sealed class RegistryOptionsValidator : IValidateOptions<RegistryOptions>
{
    public ValidateOptionsResult Validate(string? name, RegistryOptions options)
    {
        var errors = new List<string>();
        const string s = RegistryOptions.SectionName;
        if (!string.IsNullOrEmpty(options.CaFile))
        {
            if (!File.Exists(options.CaFile))
                errors.Add($"{s}:CaFile {options.CaFile} does not exist");
            else
            {
                try
                {
                    var certs = new X509Certificate2Collection();
                    certs.ImportFromPemFile(options.CaFile);
                    if (certs.Count == 0) errors.Add($"{s}:CaFile {options.CaFile} holds no PEM certificate");
                }
                catch (CryptographicException e)
                {
                    errors.Add($"{s}:CaFile {options.CaFile} is not a PEM certificate file: {e.Message}");
                }
            }
        }
        if (!string.IsNullOrEmpty(options.CredentialsFile) && File.Exists(options.CredentialsFile))
        {
            try { RegistryCredentials.Load(options.CredentialsFile); }
            catch (FormatException e) { errors.Add($"{s}:CredentialsFile: {e.Message}"); }
        }
        foreach (var registry in options.InsecureRegistries)
            if (string.IsNullOrWhiteSpace(registry) || registry.Contains('/', StringComparison.Ordinal) || registry.Contains("://", StringComparison.Ordinal))
                errors.Add($"{s}:InsecureRegistries entries are host[:port] as written in references (e.g. localhost:5000), got \"{registry}\"");
        if (options.RequestTimeout <= TimeSpan.Zero)
            errors.Add($"{s}:RequestTimeout must be positive");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>Fails the daemon at start when the cache settings are unusable.</summary>
public sealed class ImageCacheOptionsValidator : IValidateOptions<ImageCacheOptions>
{
    public ValidateOptionsResult Validate(string? name, ImageCacheOptions options)
    {
        var errors = new List<string>();
        const string s = ImageCacheOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.Root) || !Path.IsPathRooted(options.Root))
            errors.Add($"{s}:Root must be an absolute path (normally <state-dir>/images), got \"{options.Root}\"");
        if (options.SizeLimitBytes < 0)
            errors.Add($"{s}:SizeLimitBytes must be 0 (no limit) or a size in bytes, got {options.SizeLimitBytes}");
        if (options.TagTtl < TimeSpan.Zero)
            errors.Add($"{s}:TagTtl must be 0 (ask the registry every time) or positive, got {options.TagTtl}");
        if (!string.IsNullOrEmpty(options.MkfsPath) && !File.Exists(options.MkfsPath))
            errors.Add($"{s}:MkfsPath {options.MkfsPath} does not exist; install e2fsprogs or leave it unset to use mkfs.ext4 from PATH");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
