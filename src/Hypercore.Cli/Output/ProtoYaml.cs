using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.EventEmitters;
using YamlDotNet.Serialization.NamingConventions;
using YamlDotNet.Serialization.TypeInspectors;

namespace Hypercore.Cli.Output;

/// <summary>YAML of a protobuf message, made from its protobuf JSON so field names and value encodings match -o json.</summary>
/// <remarks>
/// Walks the JSON itself and feeds YamlDotNet's emitter through the same event-emitter chain its serializer uses
/// (type assignment with necessary-string quoting, then the writer), so the text is what
/// <c>new SerializerBuilder().WithQuotingNecessaryStrings().DisableAliases()</c> printed — without the serializer's
/// reflection-based object graph walk, which Native AOT cannot compile (IL3050). Checked byte for byte against that
/// serializer in ProtoYamlTests.
/// </remarks>
internal static class ProtoYaml
{
    private static readonly IEventEmitter Events = new TypeAssigningEventEmitter(
        new WriterEventEmitter(),
        new Dictionary<Type, TagName>(),
        quoteNecessaryStrings: true,
        quoteYaml1_1Strings: false,
        defaultScalarStyle: ScalarStyle.Any,
        formatter: YamlFormatter.Default,
        enumNamingConvention: NullNamingConvention.Instance,
        typeInspector: new CompositeTypeInspector()); // only consulted for enums, which JSON has none of

    public static string FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        using var text = new StringWriter();
        var emitter = new Emitter(text, EmitterSettings.Default);
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart());
        Write(doc.RootElement, emitter);
        emitter.Emit(new DocumentEnd(isImplicit: true));
        emitter.Emit(new StreamEnd());
        return text.ToString();
    }

    private static void Write(JsonElement e, IEmitter emitter)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var map = Descriptor(null, typeof(Dictionary<string, object>));
                Events.Emit(new MappingStartEventInfo(map), emitter);
                foreach (var property in e.EnumerateObject())
                {
                    Scalar(property.Name, typeof(string), emitter);
                    Write(property.Value, emitter);
                }

                Events.Emit(new MappingEndEventInfo(map), emitter);
                break;
            case JsonValueKind.Array:
                var list = Descriptor(null, typeof(List<object>));
                Events.Emit(new SequenceStartEventInfo(list), emitter);
                foreach (var item in e.EnumerateArray())
                {
                    Write(item, emitter);
                }

                Events.Emit(new SequenceEndEventInfo(list), emitter);
                break;
            case JsonValueKind.String:
                Scalar(e.GetString(), typeof(string), emitter);
                break;
            // Every number as a double, as before: the old conversion's `TryGetInt64(out l) ? l : GetDouble()` typed
            // both arms as double. Protobuf JSON writes 64-bit integers as strings, so no number here loses digits.
            case JsonValueKind.Number:
                Scalar(e.GetDouble(), typeof(double), emitter);
                break;
            case JsonValueKind.True:
                Scalar(true, typeof(bool), emitter);
                break;
            case JsonValueKind.False:
                Scalar(false, typeof(bool), emitter);
                break;
            default:
                Scalar(null, typeof(object), emitter);
                break;
        }
    }

    private static void Scalar(object? value, Type type, IEmitter emitter) =>
        Events.Emit(new ScalarEventInfo(Descriptor(value, type)), emitter);

    private static ObjectDescriptor Descriptor(object? value, Type type) => new(value, type, type);
}
