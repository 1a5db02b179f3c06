using System.Text;
using Google.Api;
using Google.Protobuf.Reflection;

namespace Hypercore.Api.HttpJson;

/// <summary>One HttpRule binding of one method: verb, ASP.NET route template, body field, path variables.</summary>
internal sealed class HttpJsonRoute
{
    private HttpJsonRoute(HttpJsonMethodEntry method, string verb, string template, string body, IReadOnlyList<(string Name, FieldDescriptor[] Path)> pathFields)
    {
        Method = method.Descriptor;
        Invoker = method.Invoker;
        Verb = verb;
        Template = template;
        Body = body;
        PathFields = pathFields;
    }

    public MethodDescriptor Method { get; }

    public IHttpJsonInvoker Invoker { get; }

    public string Verb { get; }

    /// <summary>The URL template as an ASP.NET route ("/v1/microvms/{id}:start").</summary>
    public string Template { get; }

    /// <summary>"*" (the whole request), a field name, or empty (no body; the rest comes from the query string).</summary>
    public string Body { get; }

    public IReadOnlyList<(string Name, FieldDescriptor[] Path)> PathFields { get; }

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
            _ => throw new InvalidOperationException($"{method.Descriptor.FullName}: google.api.http has no pattern"),
        };

        if (rule.ResponseBody.Length > 0)
        {
            throw new NotSupportedException($"{method.Descriptor.FullName}: google.api.http response_body is not supported by the HTTP/JSON gateway");
        }

        var fields = new List<(string, FieldDescriptor[])>();
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
                throw new InvalidOperationException($"{method.Descriptor.FullName}: unclosed variable in \"{path}\"");
            }

            var variable = path[(i + 1)..end];
            var eq = variable.IndexOf('=', StringComparison.Ordinal);
            var fieldPath = eq < 0 ? variable : variable[..eq];
            var pattern = eq < 0 ? "*" : variable[(eq + 1)..];
            var resolved = HttpJsonRequestReader.Resolve(method.Descriptor.InputType, fieldPath)
                ?? throw new InvalidOperationException($"{method.Descriptor.FullName}: \"{path}\" names {fieldPath}, which is not a field of {method.Descriptor.InputType.FullName}");
            var name = fieldPath.Replace('.', '_');
            template.Append(pattern switch
            {
                "*" => "{" + name + "}",
                "**" => "{**" + name + "}",
                _ => throw new NotSupportedException($"{method.Descriptor.FullName}: path pattern \"{variable}\" is not supported by the HTTP/JSON gateway (only {{field}}, {{field=*}}, {{field=**}})"),
            });
            fields.Add((name, resolved));
            i = end + 1;
        }

        return new HttpJsonRoute(method, verb, template.ToString(), rule.Body, fields);
    }
}
