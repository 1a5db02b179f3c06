using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Hypercore.Api.HttpJson;

/// <summary>The request message of an HTTP/JSON call: the body (all of it, or one field), then path, then query values.</summary>
internal static class HttpJsonRequestReader
{
    public const string MalformedJson = "Request JSON payload is not correctly formatted.";

    // Unknown fields are ignored, as transcoding ignored them (older clients keep working against newer daemons).
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true).WithTypeRegistry(HttpJsonGateway.TypeRegistry));

    public static async Task<IMessage> ReadAsync(HttpContext http, HttpJsonRoute route)
    {
        var descriptor = route.Method.InputType;
        var message = descriptor.Parser.ParseFrom(ByteString.Empty);
        var bound = new HashSet<FieldDescriptor>();
        if (route.Body.Length > 0)
        {
            var contentType = http.Request.ContentType ?? "";
            if (!IsJson(contentType))
            {
                throw new HttpJsonException($"Unable to read the request as JSON because the request content type '{contentType}' is not a known JSON content type.");
            }

            string text;
            using (var reader = new StreamReader(http.Request.Body, Encoding.UTF8, detectEncodingFromByteOrderMarks: false))
            {
                text = await reader.ReadToEndAsync(http.RequestAborted);
            }

            if (route.Body == "*")
            {
                message = Parse(text, descriptor);
            }
            else
            {
                var field = descriptor.FindFieldByName(route.Body)
                    ?? throw new InvalidOperationException($"{route.Method.FullName}: body field {route.Body} does not exist");
                field.Accessor.SetValue(message, Parse(text, field.MessageType));
                bound.Add(field);
            }
        }

        foreach (var (name, path) in route.PathFields)
        {
            if (http.Request.RouteValues.TryGetValue(name, out var value) && value is string text)
            {
                Set(message, path, [text], name);
                bound.Add(path[0]);
            }
        }

        if (route.Body != "*")
        {
            foreach (var (key, values) in http.Request.Query)
            {
                if (Resolve(descriptor, key) is { } path && !bound.Contains(path[0]))
                {
                    Set(message, path, values.Where(v => v is not null).Select(v => v!).ToArray(), key);
                }
            }
        }

        return message;
    }

    private static IMessage Parse(string text, MessageDescriptor descriptor)
    {
        try
        {
            using (var document = JsonDocument.Parse(text))
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new HttpJsonException($"{MalformedJson} The body must be a JSON object, got {document.RootElement.ValueKind}.");
                }

                RefuseNullCollections(document.RootElement, descriptor);
            }

            return Parser.Parse(text, descriptor);
        }
        catch (JsonException ex)
        {
            throw new HttpJsonException($"{MalformedJson} {ex.Message}");
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidJsonException or FormatException or InvalidOperationException or ArgumentException)
        {
            throw new HttpJsonException($"{MalformedJson} {ex.Message}");
        }
    }

    /// <summary>
    /// null for a repeated or map field was refused by transcoding ("Unable to assign 'null'"), while protobuf's JSON
    /// parser would read it as empty: kept refused, so the answer to a request does not depend on the gateway.
    /// </summary>
    private static void RefuseNullCollections(JsonElement element, MessageDescriptor descriptor)
    {
        if (HttpJsonWriter.IsWellKnown(descriptor))
        {
            return;
        }

        foreach (var property in element.EnumerateObject())
        {
            var field = descriptor.FindFieldByName(property.Name) ?? FindByJsonName(descriptor, property.Name);
            if (field is null)
            {
                continue;
            }

            var value = property.Value;
            if (value.ValueKind == JsonValueKind.Null && (field.IsRepeated || field.IsMap))
            {
                throw new HttpJsonException($"{MalformedJson} null is not a value for the {(field.IsMap ? "map" : "repeated")} field \"{property.Name}\"; leave it out or send {(field.IsMap ? "{}" : "[]")}.");
            }

            if (field.FieldType != FieldType.Message)
            {
                continue;
            }

            if (field.IsMap && value.ValueKind == JsonValueKind.Object && field.MessageType.FindFieldByNumber(2) is { FieldType: FieldType.Message } mapValue)
            {
                foreach (var entry in value.EnumerateObject().Where(e => e.Value.ValueKind == JsonValueKind.Object))
                {
                    RefuseNullCollections(entry.Value, mapValue.MessageType);
                }
            }
            else if (field.IsRepeated && value.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in value.EnumerateArray().Where(i => i.ValueKind == JsonValueKind.Object))
                {
                    RefuseNullCollections(item, field.MessageType);
                }
            }
            else if (!field.IsRepeated && value.ValueKind == JsonValueKind.Object)
            {
                RefuseNullCollections(value, field.MessageType);
            }
        }
    }

    private static FieldDescriptor? FindByJsonName(MessageDescriptor descriptor, string name) =>
        descriptor.Fields.InFieldNumberOrder().FirstOrDefault(f => f.JsonName == name);

    /// <summary>A dotted query key (field names or lowerCamel JSON names) to its fields; null when any part is unknown.</summary>
    public static FieldDescriptor[]? Resolve(MessageDescriptor descriptor, string key)
    {
        var parts = key.Split('.');
        var path = new FieldDescriptor[parts.Length];
        var current = descriptor;
        for (var i = 0; i < parts.Length; i++)
        {
            if (current is null)
            {
                return null;
            }

            var field = current.FindFieldByName(parts[i]) ?? FindByJsonName(current, parts[i]);
            if (field is null || field.IsMap || (i < parts.Length - 1 && (field.FieldType != FieldType.Message || field.IsRepeated)))
            {
                return null;
            }

            path[i] = field;
            current = field.FieldType == FieldType.Message ? field.MessageType : null;
        }

        return path;
    }

    private static void Set(IMessage message, FieldDescriptor[] path, string[] values, string key)
    {
        var target = message;
        for (var i = 0; i < path.Length - 1; i++)
        {
            var child = (IMessage?)path[i].Accessor.GetValue(target);
            if (child is null)
            {
                child = path[i].MessageType.Parser.ParseFrom(ByteString.Empty);
                path[i].Accessor.SetValue(target, child);
            }

            target = child;
        }

        var field = path[^1];
        if (field.FieldType == FieldType.Message || values.Length == 0)
        {
            return; // only scalar fields come from paths and query strings
        }

        if (field.IsRepeated)
        {
            var list = (IList)field.Accessor.GetValue(target);
            foreach (var value in values)
            {
                list.Add(Convert(field, value, key));
            }
        }
        else
        {
            field.Accessor.SetValue(target, Convert(field, values[^1], key));
        }
    }

    private static object Convert(FieldDescriptor field, string value, string key)
    {
        var c = CultureInfo.InvariantCulture;
        try
        {
            return field.FieldType switch
            {
                FieldType.String => value,
                FieldType.Bool => bool.Parse(value),
                FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => int.Parse(value, NumberStyles.Integer, c),
                FieldType.UInt32 or FieldType.Fixed32 => uint.Parse(value, NumberStyles.Integer, c),
                FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => long.Parse(value, NumberStyles.Integer, c),
                FieldType.UInt64 or FieldType.Fixed64 => ulong.Parse(value, NumberStyles.Integer, c),
                FieldType.Double => double.Parse(value, NumberStyles.Float, c),
                FieldType.Float => float.Parse(value, NumberStyles.Float, c),
                FieldType.Bytes => ByteString.FromBase64(value),
                FieldType.Enum => field.EnumType.FindValueByName(value)?.Number
                    ?? (int.TryParse(value, NumberStyles.Integer, c, out var n) ? n : throw new FormatException($"not a value of {field.EnumType.Name}")),
                _ => throw new FormatException($"type {field.FieldType} cannot come from a URL"),
            };
        }
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            throw new HttpJsonException($"Invalid value \"{value}\" for \"{key}\" ({field.FieldType}): {ex.Message}");
        }
    }

    private static bool IsJson(string contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media) &&
        (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) ||
         media.MediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
}

/// <summary>A request the gateway cannot turn into a message: InvalidArgument, HTTP 400.</summary>
internal sealed class HttpJsonException(string message) : Exception(message);
