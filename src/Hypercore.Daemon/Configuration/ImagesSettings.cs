using Hypercore.Images;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Microsoft.Extensions.Options;

namespace Hypercore.Daemon.Configuration;

/// <summary>Images (issue 11): how the node reaches registries. Lists are comma-separated.</summary>
public sealed partial class DaemonOptions
{
    /// <summary>Registries (host[:port] as in references) spoken to over plain HTTP; default none.</summary>
    public string? InsecureRegistries { get; set; }

    /// <summary>Registries (host[:port] as in references) image references may name; default none (insecure ones count too).</summary>
    public string? AllowedRegistries { get; set; }

    /// <summary>The image cache: blobs, unpacked trees and disks of pulled OCI images, apart from the named-image folders.</summary>
    public string ImageCacheDirectory => Path.Combine(StateDirectory, "image-cache");
}

/// <summary>
/// Images (issue 11) settings: flags and TOML keys of the same name. Credentials, CA and the size limit map straight
/// to the images library's sections (it validates them at start); the insecure list is the daemon's, split here.
/// </summary>
public static class ImagesSettings
{
    public static readonly DaemonSetting RegistryCredentials = new("registry-credentials", RegistryOptions.SectionName + ":CredentialsFile",
        "registry credentials in docker's config.json format ({\"auths\": {\"host:port\": {\"auth\": base64(user:password)}}}); default anonymous", "path");

    public static readonly DaemonSetting RegistryCa = new("registry-ca", RegistryOptions.SectionName + ":CaFile",
        "PEM file of CA certificates trusted for registries besides the system store; default none", "path");

    public static readonly DaemonSetting InsecureRegistries = new("insecure-registries", "Daemon:InsecureRegistries",
        "registries (host:port as written in references) spoken to over plain HTTP (comma-separated); default none: HTTPS only", "hosts");

    public static readonly DaemonSetting ImageCacheMaxBytes = new("image-cache-max-bytes", ImageCacheOptions.SectionName + ":SizeLimitBytes",
        "image cache size above which images no VM uses are evicted, least recently used first; default 0 (no limit)", "bytes")
    {
        Kind = SettingKind.WholeNumber, Min = 0,
    };

    public static readonly DaemonSetting AllowedRegistries = new(RegistryAllowList.Setting, "Daemon:AllowedRegistries",
        "registries (host:port as written in references) image references may name (comma-separated); insecure-registries count too; " +
        "default none: every image reference is refused, so no caller can make the node connect to a host it was not given", "hosts");

    public static readonly IReadOnlyList<DaemonSetting> All = [RegistryCredentials, RegistryCa, InsecureRegistries, ImageCacheMaxBytes, AllowedRegistries];

    public static IList<string> InsecureList(DaemonOptions d) => HostAccessSettings.List(d.InsecureRegistries);

    public static IList<string> AllowedList(DaemonOptions d) => HostAccessSettings.List(d.AllowedRegistries);

    /// <summary>The registries references may name: the allowed list and the insecure list (naming one there is an explicit choice too).</summary>
    public static RegistryAllowList AllowList(DaemonOptions d) => new(AllowedList(d), InsecureList(d));
}

/// <summary>Checks what the images library cannot know: a credentials file that was named must exist.</summary>
internal sealed class ImagesSettingsValidator(IOptions<RegistryOptions> registry) : IValidateOptions<DaemonOptions>
{
    public ValidateOptionsResult Validate(string? name, DaemonOptions options)
    {
        var errors = new List<string>();
        if (registry.Value.CredentialsFile is { Length: > 0 } credentials && !File.Exists(credentials))
        {
            errors.Add($"{ImagesSettings.RegistryCredentials.Name}: {credentials} does not exist");
        }

        foreach (var (setting, hosts) in new[]
        {
            (ImagesSettings.InsecureRegistries, ImagesSettings.InsecureList(options)),
            (ImagesSettings.AllowedRegistries, ImagesSettings.AllowedList(options)),
        })
        {
            foreach (var host in hosts)
            {
                if (host.Contains('/', StringComparison.Ordinal) || host.Contains("://", StringComparison.Ordinal) || host.Contains('*', StringComparison.Ordinal))
                {
                    errors.Add($"{setting.Name}: \"{host}\" must be host[:port] as written in image references, e.g. localhost:5000 (no scheme, path or wildcard)");
                }
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
