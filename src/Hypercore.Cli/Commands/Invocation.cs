using System.CommandLine;
using Hypercore.Cli.Output;
using Hypercore.Cli.Progress;
using Hypercore.Client;

namespace Hypercore.Cli.Commands;

/// <summary>Everything one command run needs: its parsed flags, the writers, the environment and a client.</summary>
internal sealed class Invocation(ParseResult parse, GlobalOptions globals, TextWriter output, TextWriter error, CliEnvironment env)
    : IDisposable
{
    private HypercoreClient? _client;

    public ParseResult Parse => parse;

    public TextWriter Out => output;

    public TextWriter Err => error;

    public CliEnvironment Environment => env;

    /// <summary>The -n value, or null when it was not given (the daemon then finds VMs by id alone).</summary>
    public string? Namespace => parse.GetValue(globals.Namespace) is { Length: > 0 } ns ? ns : null;

    public string HostText =>
        parse.GetValue(globals.Host) is { Length: > 0 } flag ? flag
        : env.GetVariable(GlobalOptions.HostVariable) is { Length: > 0 } variable ? variable
        : HypercoreAddress.Default();

    private string? Setting(Option<string?> flag, string variable) =>
        parse.GetValue(flag) is { Length: > 0 } value ? value
        : env.GetVariable(variable) is { Length: > 0 } fromEnvironment ? fromEnvironment
        : null;

    public OutputFormat Format => parse.GetValue(globals.Output) switch
    {
        "json" => OutputFormat.Json,
        "yaml" => OutputFormat.Yaml,
        _ => OutputFormat.Table,
    };

    public MicroVmPrinter Printer => new(output, Format, env.TimeProvider);

    /// <summary>The address the client was made for; null before <see cref="Client"/> was first used.</summary>
    public Uri? Address => _client?.Address;

    public HypercoreClient Client
    {
        get
        {
            if (_client is null)
            {
                var options = new HypercoreClientOptions
                {
                    TimeProvider = env.TimeProvider,
                    TlsCaFile = Setting(globals.TlsCa, GlobalOptions.TlsCaVariable),
                    TlsCertFile = Setting(globals.TlsCert, GlobalOptions.TlsCertVariable),
                    TlsKeyFile = Setting(globals.TlsKey, GlobalOptions.TlsKeyVariable),
                    TokenFile = Setting(globals.TokenFile, GlobalOptions.TokenFileVariable),
                };
                try
                {
                    _client = HypercoreClient.Connect(HostText, options);
                }
                catch (FormatException ex)
                {
                    throw new UsageException($"--host: {ex.Message}", ex);
                }
                catch (ArgumentException ex)
                {
                    throw new UsageException(ex.Message, ex);
                }
            }

            return _client;
        }
    }

    public WaitProgress Progress() => WaitProgress.Create(error, env.ErrorIsTerminal, env.TimeProvider);

    /// <summary>"ns/id" when the namespace is known, else "id".</summary>
    public static string Name(string? @namespace, string id) => @namespace is { Length: > 0 } ? $"{@namespace}/{id}" : id;

    public void Dispose() => _client?.Dispose();
}
