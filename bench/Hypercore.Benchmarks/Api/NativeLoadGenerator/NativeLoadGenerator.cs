using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Health.V1;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.Api.NativeLoadGenerator;

/// <summary>
/// The API benchmark's native load generator (issue 15, lg19): grpc-load.c, one thread and one epoll loop over N HTTP/2
/// connections (libnghttp2), the same protocol, arguments' meaning and RESULT keys as <see cref="LoadGenerator"/>. It costs
/// the server's two cores ~17–20 µs per call where the .NET client (Grpc.Net.Client) costs 40–80 µs and its collections and
/// thread hand-offs land in the latency it measures. The default; <c>HYPERCORE_BENCH_LOAD_GENERATOR=dotnet</c> selects the
/// .NET one. The C source is embedded in this assembly and compiled with <c>cc</c> on first use into a directory of the
/// user's cache named by its hash, so a published runner needs only cc and libnghttp2-dev (scripts/setup.sh installs both).
/// </summary>
public static class NativeLoadGenerator
{
    public const string SelectEnv = "HYPERCORE_BENCH_LOAD_GENERATOR";
    public const string Native = "native";
    public const string Dotnet = "dotnet";

    /// <summary>Width of the id the native generator writes into each Create: "&lt;prefix&gt;-&lt;client:0000&gt;-&lt;index:0000000000&gt;".</summary>
    internal static int IdWidth(string prefix) => prefix.Length + 1 + 4 + 1 + 10;

    /// <summary>Which load generator this run uses: <see cref="Native"/> (default) or <see cref="Dotnet"/>.</summary>
    public static string Selected()
    {
        var value = Environment.GetEnvironmentVariable(SelectEnv);
        return value switch
        {
            null or "" or Native => Native,
            Dotnet => Dotnet,
            _ => throw new ArgumentException($"{SelectEnv}={value}: expected {Native} or {Dotnet}"),
        };
    }

    /// <summary>The path and request of one call (the method's full name from the generated descriptors, not typed by hand).</summary>
    internal static (string Path, byte[] Body, int? IdOffset, byte[]? Expect) Request(string call, string? kernel, string prefix, string? state)
    {
        if (call == LoadGenerator.CallHealth)
        {
            var check = Health.Descriptor.FindMethodByName("Check");
            return ($"/{check.Service.FullName}/{check.Name}", new HealthCheckRequest().ToByteArray(), null,
                new HealthCheckResponse { Status = HealthCheckResponse.Types.ServingStatus.Serving }.ToByteArray());
        }

        var create = VMService.Descriptor.FindMethodByName("Create");
        var placeholder = new string('#', IdWidth(prefix));
        var body = LoadGenerator.CreateRequest(placeholder, kernel ?? throw new ArgumentException("create needs a kernel"), state).ToByteArray();
        var offset = body.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(placeholder));
        if (offset < 0)
        {
            throw new InvalidOperationException("the Create request's id placeholder is not in its serialized form");
        }

        return ($"/{create.Service.FullName}/{create.Name}", body, offset, null);
    }

    /// <summary>The start of one native load generator run: the same arguments' meaning as the .NET one's.</summary>
    public static ProcessStartInfo StartInfo(string target, string call, int clients, TimeSpan duration, string? kernel, string prefix, string? state)
    {
        var (path, body, idOffset, expect) = Request(call, kernel, prefix, state);
        var start = new ProcessStartInfo(BinaryPath());
        foreach (var arg in (string[])["--target", target, "--path", path, "--call", call, "--clients", clients.ToString(CultureInfo.InvariantCulture),
            "--seconds", duration.TotalSeconds.ToString(CultureInfo.InvariantCulture), "--prefix", prefix, "--body-hex", Convert.ToHexString(body),
            .. idOffset is { } o ? (string[])["--id-offset", o.ToString(CultureInfo.InvariantCulture)] : [],
            .. expect is { } e ? (string[])["--expect-hex", Convert.ToHexString(e)] : []])
        {
            start.ArgumentList.Add(arg);
        }

        // HYPERCORE_BENCH_CLIENT_ENV: the clients' own environment, as for the .NET one (an A/B, e.g. a trace file).
        foreach (var (name, value) in Runner.DaemonRuntime.ClientEnvironment())
        {
            start.Environment[name] = value;
        }

        return start;
    }

    /// <summary>The compiled generator, found or built once per process (<see cref="Build"/>).</summary>
    private static readonly Lazy<string> Binary = new(Build);

    /// <summary>
    /// $XDG_CACHE_HOME/hypercore, else ~/.cache/hypercore: the user's own cache, not the shared /tmp, where another local
    /// user could plant a binary under the predictable name that the benchmark (run as root) would then execute.
    /// </summary>
    internal static string CacheRoot()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify) is { Length: > 0 } home
                ? home
                : throw new InvalidOperationException("the native load generator's cache needs HOME or XDG_CACHE_HOME"), ".cache");
        return Path.Combine(root, "hypercore");
    }

    /// <summary>
    /// The compiled generator: &lt;<see cref="CacheRoot"/>&gt;/grpc-load-&lt;source hash&gt;/grpc-load, built with
    /// <c>cc -O2 … -lnghttp2 -lm</c> (or clang, or gcc) when missing (into a temporary name, then moved: concurrent runs never see half a binary).
    /// </summary>
    public static string BinaryPath() => Binary.Value;

    private static string Build()
    {
        using var stream = typeof(NativeLoadGenerator).Assembly.GetManifestResourceStream("grpc-load.c")
            ?? throw new InvalidOperationException("grpc-load.c is not embedded in the benchmark runner");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var source = buffer.ToArray();
        var dir = Path.Combine(CacheRoot(), "grpc-load-" + Convert.ToHexStringLower(SHA256.HashData(source))[..16]);
        var binary = Path.Combine(dir, "grpc-load");
        if (File.Exists(binary))
        {
            return binary; // built by an earlier run of the same source
        }

        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var src = Path.Combine(dir, $"grpc-load.{Environment.ProcessId}.c");
        var tmp = Path.Combine(dir, $"grpc-load.{Environment.ProcessId}.tmp");
        File.WriteAllBytes(src, source);
        // cc as the system names it; clang (scripts/setup.sh installs it for vis) or gcc where no cc link exists.
        Process? compile = null;
        var tried = new List<string>();
        foreach (var compiler in (string[])["cc", "clang", "gcc"])
        {
            var cc = new ProcessStartInfo(compiler) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var arg in (string[])["-O2", "-Wall", "-o", tmp, src, "-lnghttp2", "-lm"])
            {
                cc.ArgumentList.Add(arg);
            }

            try
            {
                compile = Process.Start(cc)!;
                break;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                tried.Add($"{compiler}: {e.Message}");
            }
        }

        if (compile is null)
        {
            throw new InvalidOperationException(
                $"the native load generator needs a C compiler ({string.Join("; ", tried)}) and libnghttp2-dev: run scripts/setup.sh, or set {SelectEnv}={Dotnet}");
        }

        using (compile)
        {
            var err = compile.StandardError.ReadToEndAsync();
            compile.StandardOutput.ReadToEnd();
            compile.WaitForExit();
            File.Delete(src);
            if (compile.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"the native load generator did not compile (cc exit {compile.ExitCode}; it needs libnghttp2-dev: run scripts/setup.sh, or set {SelectEnv}={Dotnet}): {err.Result}");
            }
        }

        File.Move(tmp, binary, overwrite: true);
        return binary;
    }
}
