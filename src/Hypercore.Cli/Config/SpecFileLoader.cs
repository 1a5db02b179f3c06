using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Hypercore.Contracts.VmApi;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Hypercore.Cli.Config;

/// <summary>
/// Reads a full MicroVMSpec in protobuf JSON (the shape grpcurl and the HTTP API use), or the same document
/// written as YAML. A document with a top-level "microvm" key is read as a whole CreateMicroVMRequest.
/// Unknown fields are errors, like unknown hac.toml keys.
/// </summary>
internal static partial class SpecFileLoader
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(false));

    [GeneratedRegex(@"^[-+]?(0|[1-9][0-9]*)\z")]
    private static partial Regex YamlInt();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\z")]
    private static partial Regex YamlFloat();

    public static MicroVMSpec Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot read spec file {path}: {ex.Message}", ex);
        }

        var extension = Path.GetExtension(path).ToLowerInvariant();
        var isJson = extension == ".json" || (extension is not (".yaml" or ".yml") && text.TrimStart().StartsWith('{'));
        return Parse(text, isJson, path);
    }

    public static MicroVMSpec Parse(string text, bool isJson, string sourceName)
    {
        var json = isJson ? text : YamlToJson(text, sourceName);
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new UsageException($"{sourceName}: expected an object with MicroVMSpec fields");
            }

            if (doc.RootElement.TryGetProperty("microvm", out _))
            {
                return Parser.Parse<CreateMicroVMRequest>(json).Microvm ?? new MicroVMSpec();
            }

            return Parser.Parse<MicroVMSpec>(json);
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidJsonException or JsonException)
        {
            throw new UsageException($"{sourceName}: not a valid MicroVMSpec: {ex.Message}", ex);
        }
    }

    /// <summary>Plain YAML scalars become JSON numbers, booleans and nulls by the YAML 1.2 core schema; quoted ones stay strings.</summary>
    internal static string YamlToJson(string yaml, string sourceName)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException ex)
        {
            throw new UsageException($"{sourceName}: invalid YAML: {ex.Message}", ex);
        }

        if (stream.Documents.Count != 1)
        {
            throw new UsageException($"{sourceName}: expected exactly one YAML document, found {stream.Documents.Count}");
        }

        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, stream.Documents[0].RootNode, sourceName);
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter w, YamlNode node, string sourceName)
    {
        switch (node)
        {
            case YamlMappingNode map:
                w.WriteStartObject();
                foreach (var (key, value) in map.Children)
                {
                    w.WritePropertyName(key is YamlScalarNode k ? k.Value ?? "" : throw new UsageException($"{sourceName}: mapping keys must be plain strings"));
                    Write(w, value, sourceName);
                }

                w.WriteEndObject();
                break;
            case YamlSequenceNode seq:
                w.WriteStartArray();
                foreach (var item in seq.Children)
                {
                    Write(w, item, sourceName);
                }

                w.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                WriteScalar(w, scalar);
                break;
            default:
                throw new UsageException($"{sourceName}: YAML aliases are not supported");
        }
    }

    private static void WriteScalar(Utf8JsonWriter w, YamlScalarNode scalar)
    {
        var value = scalar.Value ?? "";
        if (scalar.Style is not (ScalarStyle.Plain or ScalarStyle.Any))
        {
            w.WriteStringValue(value);
        }
        else if (value is "" or "~" or "null" or "Null" or "NULL")
        {
            w.WriteNullValue();
        }
        else if (value is "true" or "True" or "TRUE" or "false" or "False" or "FALSE")
        {
            w.WriteBooleanValue(value[0] is 't' or 'T');
        }
        else if (YamlInt().IsMatch(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            w.WriteNumberValue(integer);
        }
        else if (YamlFloat().IsMatch(value) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var real))
        {
            w.WriteNumberValue(real);
        }
        else
        {
            w.WriteStringValue(value);
        }
    }
}
