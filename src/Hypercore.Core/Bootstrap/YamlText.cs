using System.Collections;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.EventEmitters;
using YamlDotNet.Serialization.NamingConventions;
using YamlDotNet.Serialization.TypeInspectors;

namespace Hypercore.Bootstrap;

/// <summary>
/// Block YAML of a tree of string-keyed maps, lists, strings, booleans and integers: the text
/// <c>new SerializerBuilder().Build().Serialize(value)</c> printed for the same tree. A tree here never holds one map
/// or list twice (the serializer would have written an anchor and an alias for that; this writes it twice).
/// </summary>
/// <remarks>
/// Feeds YamlDotNet's emitter through the event-emitter chain its default serializer uses (type assignment without
/// necessary-string quoting, then the writer) but walks the tree itself: the serializer's reflection-based object graph
/// walk cannot be compiled by Native AOT (IL3050). Checked byte for byte against that serializer in YamlTextTests.
/// </remarks>
internal static class YamlText
{
    private static readonly IEventEmitter Events = new TypeAssigningEventEmitter(
        new WriterEventEmitter(),
        new Dictionary<Type, TagName>(),
        quoteNecessaryStrings: false,
        quoteYaml1_1Strings: false,
        defaultScalarStyle: ScalarStyle.Any,
        formatter: YamlFormatter.Default,
        enumNamingConvention: NullNamingConvention.Instance,
        typeInspector: new CompositeTypeInspector()); // only consulted for enums, which these trees have none of

    public static string Emit(object value)
    {
        using var text = new StringWriter();
        var emitter = new Emitter(text, EmitterSettings.Default);
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart());
        Write(value, emitter);
        emitter.Emit(new DocumentEnd(isImplicit: true));
        emitter.Emit(new StreamEnd());
        return text.ToString();
    }

    private static void Write(object? value, IEmitter emitter)
    {
        switch (value)
        {
            case null:
                Events.Emit(new ScalarEventInfo(new ObjectDescriptor(null, typeof(object), typeof(object))), emitter);
                break;
            case string or bool or int or long or double:
                var type = value.GetType();
                Events.Emit(new ScalarEventInfo(new ObjectDescriptor(value, type, type)), emitter);
                break;
            case IDictionary map:
                var mapType = new ObjectDescriptor(value, value.GetType(), value.GetType());
                Events.Emit(new MappingStartEventInfo(mapType), emitter);
                foreach (DictionaryEntry entry in map)
                {
                    Write(entry.Key, emitter);
                    Write(entry.Value, emitter);
                }

                Events.Emit(new MappingEndEventInfo(mapType), emitter);
                break;
            case IEnumerable list:
                var listType = new ObjectDescriptor(value, value.GetType(), value.GetType());
                Events.Emit(new SequenceStartEventInfo(listType), emitter);
                foreach (var item in list)
                {
                    Write(item, emitter);
                }

                Events.Emit(new SequenceEndEventInfo(listType), emitter);
                break;
            default:
                throw new ArgumentException($"YamlText cannot write a {value.GetType()}", nameof(value));
        }
    }
}
