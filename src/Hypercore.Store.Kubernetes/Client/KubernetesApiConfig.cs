using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Store.Kubernetes.Client;

/// <summary>
/// Where the API server is and how to authenticate to it: what the store needs of a kubeconfig or of a pod's
/// service account. Loaded once at start; only a token file is read again (projected service-account tokens rotate).
/// </summary>
public sealed class KubernetesApiConfig
{
    /// <summary>The in-cluster service account's directory, as every Kubernetes client reads it.</summary>
    public const string ServiceAccountPath = "/var/run/secrets/kubernetes.io/serviceaccount";

    /// <summary>The API server, e.g. <c>https://10.0.0.1:443</c>; a path (an API proxy's prefix) is kept.</summary>
    public required Uri Server { get; init; }

    /// <summary>A bearer token given inline.</summary>
    public string? Token { get; init; }

    /// <summary>A file holding the bearer token, read again when older than a minute (service-account tokens rotate).</summary>
    public string? TokenFile { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    /// <summary>Client certificate with its private key (kubeconfig client-certificate + client-key).</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>Roots the server's certificate must chain to; empty: the system's trust store.</summary>
    public X509Certificate2Collection CertificateAuthorities { get; init; } = [];

    /// <summary>kubeconfig insecure-skip-tls-verify: the server's certificate is not checked at all.</summary>
    public bool SkipTlsVerify { get; init; }

    /// <summary>kubeconfig tls-server-name: the name the server's certificate must carry instead of the URL's host.</summary>
    public string? TlsServerName { get; init; }

    /// <summary>kubeconfig exec credential plugin; its token is fetched when needed and cached until it expires.</summary>
    public ExecCredentialCommand? Exec { get; init; }

    /// <summary>The context's namespace (informational; the store has its own setting).</summary>
    public string? Namespace { get; init; }

    /// <summary>~/.kube/config.</summary>
    public static string DefaultKubeconfigPath =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config");

    /// <summary>In a pod: KUBERNETES_SERVICE_HOST/PORT are set and the service account's token and CA are mounted.</summary>
    public static bool IsInCluster() =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST")) &&
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT")) &&
        File.Exists(Path.Combine(ServiceAccountPath, "token")) &&
        File.Exists(Path.Combine(ServiceAccountPath, "ca.crt"));

    /// <summary>The pod's service account: its token (re-read as it rotates), the cluster CA and the service address.</summary>
    public static KubernetesApiConfig InCluster()
    {
        var host = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        var port = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
        {
            throw new KubeconfigException("not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
        }

        if (System.Net.IPAddress.TryParse(host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6)
        {
            host = $"[{host}]";
        }

        var ca = Path.Combine(ServiceAccountPath, "ca.crt");
        var nsFile = Path.Combine(ServiceAccountPath, "namespace");
        return new KubernetesApiConfig
        {
            Server = new Uri($"https://{host}:{port}"),
            TokenFile = Path.Combine(ServiceAccountPath, "token"),
            CertificateAuthorities = File.Exists(ca) ? LoadPemCertificates(File.ReadAllText(ca), ca) : [],
            Namespace = File.Exists(nsFile) ? File.ReadAllText(nsFile).Trim() : null,
        };
    }

    /// <summary>
    /// Reads a kubeconfig file (YAML or JSON): the named context, else the file's current-context. Relative file paths in
    /// it are relative to the file, as kubectl reads them.
    /// </summary>
    public static KubernetesApiConfig FromKubeconfig(string path, string? context = null)
    {
        if (!File.Exists(path))
        {
            throw new KubeconfigException($"kubeconfig {path} does not exist");
        }

        var yaml = new YamlStream();
        using (var reader = new StreamReader(path))
        {
            yaml.Load(reader);
        }

        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new KubeconfigException("the kubeconfig is empty or not a mapping");
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        var contextName = context ?? Scalar(root, "current-context");
        if (string.IsNullOrEmpty(contextName))
        {
            throw new KubeconfigException("the kubeconfig names no current-context and no context was given");
        }

        var ctx = Named(root, "contexts", contextName, "context") ?? throw new KubeconfigException($"context '{contextName}' not found in the kubeconfig");
        var clusterName = Scalar(ctx, "cluster") ?? throw new KubeconfigException($"context '{contextName}' names no cluster");
        var cluster = Named(root, "clusters", clusterName, "cluster") ?? throw new KubeconfigException($"cluster '{clusterName}' not found in the kubeconfig");
        var userName = Scalar(ctx, "user");
        var user = string.IsNullOrEmpty(userName) ? null : Named(root, "users", userName, "user") ?? throw new KubeconfigException($"user '{userName}' not found in the kubeconfig");

        var server = Scalar(cluster, "server");
        if (string.IsNullOrEmpty(server) || !Uri.TryCreate(server, UriKind.Absolute, out var serverUri) || serverUri.Scheme is not ("http" or "https"))
        {
            throw new KubeconfigException($"cluster '{clusterName}' has no http(s) server URL (server: \"{server}\")");
        }

        var cas = Data(cluster, "certificate-authority-data", "certificate-authority", dir) is { } caPem
            ? LoadPemCertificates(caPem, $"cluster '{clusterName}' certificate-authority")
            : [];

        X509Certificate2? clientCert = null;
        string? token = null, tokenFile = null, username = null, password = null;
        ExecCredentialCommand? exec = null;
        if (user is not null)
        {
            if (user.Children.ContainsKey("auth-provider"))
            {
                throw new KubeconfigException($"user '{userName}' uses an auth-provider, which vistarad does not support; use a token, a client certificate or an exec plugin");
            }

            token = Scalar(user, "token");
            tokenFile = Scalar(user, "tokenFile") is { Length: > 0 } tf ? Resolve(tf, dir) : null;
            username = Scalar(user, "username");
            password = Scalar(user, "password");
            var certPem = Data(user, "client-certificate-data", "client-certificate", dir);
            var keyPem = Data(user, "client-key-data", "client-key", dir);
            if (certPem is not null || keyPem is not null)
            {
                if (certPem is null || keyPem is null)
                {
                    throw new KubeconfigException($"user '{userName}' has a client certificate without its key or a key without its certificate");
                }

                try
                {
                    clientCert = X509Certificate2.CreateFromPem(certPem, keyPem);
                }
                catch (System.Security.Cryptography.CryptographicException ex)
                {
                    throw new KubeconfigException($"user '{userName}': client certificate or key does not load: {ex.Message}");
                }
            }

            if (user.Children.TryGetValue(new YamlScalarNode("exec"), out var execNode) && execNode is YamlMappingNode execMap)
            {
                exec = ExecCredentialCommand.From(execMap, userName!, dir);
            }
        }

        return new KubernetesApiConfig
        {
            Server = serverUri,
            Token = string.IsNullOrEmpty(token) ? null : token,
            TokenFile = tokenFile,
            Username = string.IsNullOrEmpty(username) ? null : username,
            Password = password,
            ClientCertificate = clientCert,
            CertificateAuthorities = cas,
            SkipTlsVerify = string.Equals(Scalar(cluster, "insecure-skip-tls-verify"), "true", StringComparison.OrdinalIgnoreCase),
            TlsServerName = Scalar(cluster, "tls-server-name") is { Length: > 0 } sn ? sn : null,
            Exec = exec,
            Namespace = Scalar(ctx, "namespace"),
        };
    }

    internal static string? Scalar(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) && node is YamlScalarNode s ? s.Value : null;

    internal static string Resolve(string file, string dir) => Path.IsPathRooted(file) ? file : Path.Combine(dir, file);

    /// <summary>The entry named <paramref name="name"/> of a kubeconfig list (clusters, contexts, users): its inner mapping.</summary>
    private static YamlMappingNode? Named(YamlMappingNode root, string list, string name, string inner)
    {
        if (!root.Children.TryGetValue(new YamlScalarNode(list), out var node) || node is not YamlSequenceNode seq)
        {
            return null;
        }

        foreach (var entry in seq.OfType<YamlMappingNode>())
        {
            if (Scalar(entry, "name") == name)
            {
                return entry.Children.TryGetValue(new YamlScalarNode(inner), out var value) && value is YamlMappingNode m ? m : new YamlMappingNode();
            }
        }

        return null;
    }

    /// <summary>PEM text from <c>key-data</c> (base64) or from the file <c>key</c> names.</summary>
    private static string? Data(YamlMappingNode map, string dataKey, string fileKey, string dir)
    {
        if (Scalar(map, dataKey) is { Length: > 0 } data)
        {
            try
            {
                return System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(data));
            }
            catch (FormatException)
            {
                throw new KubeconfigException($"{dataKey} is not base64");
            }
        }

        if (Scalar(map, fileKey) is { Length: > 0 } file)
        {
            var full = Resolve(file, dir);
            return File.Exists(full) ? File.ReadAllText(full) : throw new KubeconfigException($"{fileKey} {full} does not exist");
        }

        return null;
    }

    private static X509Certificate2Collection LoadPemCertificates(string pem, string what)
    {
        var certs = new X509Certificate2Collection();
        try
        {
            certs.ImportFromPem(pem);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            throw new KubeconfigException($"{what}: not PEM certificates: {ex.Message}");
        }

        return certs.Count > 0 ? certs : throw new KubeconfigException($"{what}: no PEM certificate in it");
    }
}

/// <summary>A kubeconfig that cannot be used: missing, unparsable, or naming what is not in it.</summary>
public sealed class KubeconfigException : Exception
{
    public KubeconfigException(string message) : base(message)
    {
    }

    public KubeconfigException(string message, Exception inner) : base(message, inner)
    {
    }

    public KubeconfigException()
    {
    }
}
