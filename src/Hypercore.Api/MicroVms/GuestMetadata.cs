using System.Text;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// Guest metadata from the wire into the spec's text map. The request-level map carries
/// <c>google.protobuf.Any</c> values (the seed's and flintlock's CreateMicroVMRequest.metadata); only text can be
/// served to a guest, so StringValue and BytesValue (UTF-8) are accepted and every other type is refused naming
/// the key. flintlock's clients send metadata values (meta-data, user-data, vendor-data) as base64 text, which
/// flintlock decodes before the guest sees it: with <c>base64Text</c> the same is done here.
/// </summary>
public static class GuestMetadata
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The request map merged under the spec's own map (the spec's entries win on a clash, as they are the more
    /// specific). Problems go to <paramref name="errors"/>, each naming its key.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Merge(
        MapField<string, Any> request, IReadOnlyDictionary<string, string> spec, bool base64Text, ICollection<string> errors)
    {
        if (request.Count == 0 && spec.Count == 0)
        {
            // Nearly every Create (issue 15, survivors): the one shared empty map instead of a new dictionary per record,
            // which the informer and the store's caches keep for the VM's life (Mapping.ToCore shares it the same way).
            return System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;
        }

        var merged = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in request.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (FromAny(key, value, base64Text, errors) is { } text)
            {
                merged[key] = text;
            }
        }

        foreach (var (key, value) in spec)
        {
            if (!base64Text)
            {
                merged[key] = value;
            }
            else if (FromBase64(key, value, "microvm.metadata", errors) is { } text)
            {
                merged[key] = text;
            }
        }

        return merged;
    }

    private static string? FromAny(string key, Any? value, bool base64Text, ICollection<string> errors)
    {
        if (value is null || value.TypeUrl.Length == 0)
        {
            errors.Add($"metadata[\"{key}\"] has no value type; send a google.protobuf.StringValue or google.protobuf.BytesValue");
            return null;
        }

        if (value.Is(StringValue.Descriptor))
        {
            var s = value.Unpack<StringValue>().Value;
            return base64Text ? FromBase64(key, s, "metadata", errors) : s;
        }

        if (value.Is(BytesValue.Descriptor))
        {
            return Utf8(key, value.Unpack<BytesValue>().Value.Span, "metadata", errors);
        }

        errors.Add($"metadata[\"{key}\"] is a {Any.GetTypeName(value.TypeUrl)}; only google.protobuf.StringValue and google.protobuf.BytesValue are accepted");
        return null;
    }

    private static string? FromBase64(string key, string value, string field, ICollection<string> errors)
    {
        var buffer = new byte[(value.Length * 3 / 4) + 3];
        if (!Convert.TryFromBase64String(value, buffer, out var written))
        {
            errors.Add($"{field}[\"{key}\"] is not base64 text (flintlock's clients send metadata values base64-encoded)");
            return null;
        }

        return Utf8(key, buffer.AsSpan(0, written), field, errors);
    }

    private static string? Utf8(string key, ReadOnlySpan<byte> bytes, string field, ICollection<string> errors)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            errors.Add($"{field}[\"{key}\"] is not UTF-8 text; guest metadata is served as text");
            return null;
        }
    }
}
