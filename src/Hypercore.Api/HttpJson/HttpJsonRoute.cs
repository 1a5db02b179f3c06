using System.Text;
using Google.Api;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace Hypercore.Api.HttpJson;

/// <summary>
/// One HttpRule binding of one method: verb, ASP.NET route template, body field, path variables. The template comes
/// from the rule's text; the protobuf descriptors (the method's, the path fields') are looked up on the first call, so
/// that mapping the routes does not build every message's reflection descriptors at start (bench/NOTES.md, grpcbind).
/// </summary>
internal sealed class HttpJsonRoute
{
    private readonly Lazy<(MethodDescriptor Method, IReadOnlyList<(string Name, FieldDescriptor[] Path)> PathFields)> _resolved;

    private HttpJsonRoute(HttpJsonMethodEntry method, string verb, string path, string template, string body, IReadOnlyList<(string Name, string FieldPath)> variables)
    {
        Name = method.Name;
        Invoker = method.Invoker;
        Verb = verb;
        Template = template;
        Body = body;
        Variables = variables;
        _resolved = new(() => Resolve(method, path, variables), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The method's full protobuf name ("vm.services.api.VMService.Create").</summary>
    public string Name { get; }

    public MethodDescriptor Method => _resolved.Value.Method;

    public IHttpJsonInvoker Invoker { get; }

    public string Verb { get; }

    /// <summary>The URL template as an ASP.NET route ("/v1/microvms/{id}:start").</summary>
    public string Template { get; }

    /// <summary>"*" (the whole request), a field name, or empty (no body; the rest comes from the query string).</summary>
    public string Body { get; }

    /// <summary>Route value name and dotted field path of each path variable.</summary>
    public IReadOnlyList<(string Name, string FieldPath)> Variables { get; }

    public IReadOnlyList<(string Name, FieldDescriptor[] Path)> PathFields => _resolved.Value.PathFields;

    public static HttpJsonRoute From(HttpJsonMethodEntry method, HttpRule rule)
    {
        var (verb, path) = rule.PatternCase switch
        {
            HttpRule.PatternOneofCase.Get => ("GET", rule.Get),
            HttpRule.PatternOneofCase.Put => ("PUT", rule.Put),
            HttpRule.PatternOneofCase.Post => ("POST", rule.Post),
            HttpRule.PatternOneofCase.Delete => ("DELETE", rule.Delete),
            HttpRule.PatternOneofCase.Patch => ("PATCH", rule.Patch),
            HttpRule.PatternOneofCase.Custom => (rule.Custom.Kind, rule.Custom.Path),
            _ => throw new InvalidOperationException($"{method.Name}: google.api.http has no pattern"),
        };

        if (rule.ResponseBody.Length > 0)
        {
            throw new NotSupportedException($"{method.Name}: google.api.http response_body is not supported by the HTTP/JSON gateway");
        }

        var variables = new List<(string, string)>();
        var template = new StringBuilder();
        var i = 0;
        while (i < path.Length)
        {
            if (path[i] != '{')
            {
                template.Append(path[i++]);
                continue;
            }

            var end = path.IndexOf('}', i);
            if (end < 0)
            {
                throw new InvalidOperationException($"{method.Name}: unclosed variable in \"{path}\"");
            }

            var variable = path[(i + 1)..end];
            var eq = variable.IndexOf('=', StringComparison.Ordinal);
            var fieldPath = eq < 0 ? variable : variable[..eq];
            var pattern = eq < 0 ? "*" : variable[(eq + 1)..];
            var name = fieldPath.Replace('.', '_');
            template.Append(pattern switch
            {
                "*" => "{" + name + "}",
                "**" => "{**" + name + "}",
                _ => throw new NotSupportedException($"{method.Name}: path pattern \"{variable}\" is not supported by the HTTP/JSON gateway (only {{field}}, {{field=*}}, {{field=**}})"),
            });
            variables.Add((name, fieldPath));
            i = end + 1;
        }

        return new HttpJsonRoute(method, verb, path, template.ToString(), rule.Body, variables);
    }

    private static (MethodDescriptor, IReadOnlyList<(string, FieldDescriptor[])>) Resolve(HttpJsonMethodEntry method, string path, IReadOnlyList<(string Name, string FieldPath)> variables)
    {
        var descriptor = method.Descriptor();
        var fields = new List<(string, FieldDescriptor[])>();
        foreach (var (name, fieldPath) in variables)
        {
            var resolved = HttpJsonRequestReader.Resolve(descriptor.InputType, fieldPath)
                ?? throw new InvalidOperationException($"{method.Name}: \"{path}\" names {fieldPath}, which is not a field of {descriptor.InputType.FullName}");
            fields.Add((name, resolved));
        }

        return (descriptor, fields);
    }
}
