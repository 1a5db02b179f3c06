using System.Buffers;
using System.Collections;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace Hypercore.Api.HttpJson;

/// <summary>
/// Protobuf messages as the JSON the HTTP routes have always answered (ASP.NET Core JSON transcoding's defaults):
/// lowerCamel field names, every field without presence written even when it has its default value, fields with
/// presence (messages, proto3 optional, oneof members) only when set, 64-bit integers as JSON numbers, enums by name,
/// the relaxed escaper. Well-known types (Timestamp, Any, wrappers, ...) are written by Google.Protobuf's own
/// <see cref="JsonFormatter"/>. Walks the descriptors, so no reflection-based serializer is involved (Native AOT).
/// </summary>
internal static class HttpJsonWriter
{
    public const string ContentType = "application/json; charset=utf-8";

    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    private static readonly JsonFormatter WellKnown = new(JsonFormatter.Settings.Default.WithTypeRegistry(HttpJsonGateway.TypeRegistry));

    public static void StartJson(HttpResponse response)
    {
        if (!response.HasStarted)
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = ContentType;
        }
    }

    public static async Task WriteMessageAsync(HttpResponse response, IMessage message, bool newline, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, Options))
        {
            WriteMessage(writer, message);
        }

        if (newline)
        {
            buffer.Write("\n"u8);
        }

        StartJson(response);
        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
    }

    /// <summary>
    /// A failed call: the HTTP status of its gRPC code and {"code","message","details":[]} (google.rpc.Status). Once a
    /// stream has started the status line is gone, so the error is the stream's last line.
    /// </summary>
    public static async Task WriteErrorAsync(HttpResponse response, Status status, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, Options))
        {
            writer.WriteStartObject();
            writer.WriteNumber("code", (int)status.StatusCode);
            writer.WriteString("message", status.Detail);
            writer.WriteStartArray("details");
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        if (response.HasStarted)
        {
            buffer.Write("\n"u8);
        }
        else
        {
            response.StatusCode = HttpStatus(status.StatusCode);
            response.ContentType = ContentType;
        }

        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
    }

    /// <summary>The HTTP status of a gRPC code (google.rpc.Code's mapping, as transcoding answers).</summary>
    public static int HttpStatus(StatusCode code) => code switch
    {
        StatusCode.OK => 200,
        StatusCode.Cancelled => 499,
        StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange => 400,
        StatusCode.DeadlineExceeded => 504,
        StatusCode.NotFound => 404,
        StatusCode.AlreadyExists or StatusCode.Aborted => 409,
        StatusCode.PermissionDenied => 403,
        StatusCode.Unauthenticated => 401,
        StatusCode.ResourceExhausted => 429,
        StatusCode.Unimplemented => 501,
        StatusCode.Unavailable => 503,
        _ => 500,
    };

    public static void WriteMessage(Utf8JsonWriter writer, IMessage message)
    {
        var descriptor = message.Descriptor;
        if (IsWellKnown(descriptor))
        {
            // Re-written rather than copied: JsonFormatter puts spaces in objects ("{ }") and escapes differently.
            using (var document = JsonDocument.Parse(WellKnown.Format(message)))
            {
                document.WriteTo(writer);
            }

            return;
        }

        writer.WriteStartObject();
        foreach (var field in descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                writer.WritePropertyName(field.JsonName);
                writer.WriteStartObject();
                var valueField = field.MessageType.FindFieldByNumber(2);
                foreach (DictionaryEntry entry in (IDictionary)value)
                {
                    writer.WritePropertyName(MapKey(entry.Key));
                    WriteValue(writer, valueField, entry.Value);
                }

                writer.WriteEndObject();
            }
            else if (field.IsRepeated)
            {
                writer.WritePropertyName(field.JsonName);
                writer.WriteStartArray();
                foreach (var item in (IList)value)
                {
                    WriteValue(writer, field, item);
                }

                writer.WriteEndArray();
            }
            else if (!field.HasPresence || field.Accessor.HasValue(message))
            {
                writer.WritePropertyName(field.JsonName);
                WriteValue(writer, field, value);
            }
        }

        writer.WriteEndObject();
    }

    private static string MapKey(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => key.ToString() ?? "",
    };

    private static void WriteValue(Utf8JsonWriter writer, FieldDescriptor field, object? value)
    {
        switch (field.FieldType)
        {
            case FieldType.Message or FieldType.Group:
                if (value is IMessage message)
                {
                    WriteMessage(writer, message);
                }
                else
                {
                    writer.WriteNullValue();
                }

                break;
            case FieldType.String:
                writer.WriteStringValue((string)value!);
                break;
            case FieldType.Bool:
                writer.WriteBooleanValue((bool)value!);
                break;
            case FieldType.Bytes:
                writer.WriteBase64StringValue(((ByteString)value!).Span);
                break;
            case FieldType.Enum:
                var number = Convert.ToInt32(value, CultureInfo.InvariantCulture);
                if (field.EnumType.FindValueByNumber(number) is { } known)
                {
                    writer.WriteStringValue(known.Name);
                }
                else
                {
                    writer.WriteNumberValue(number);
                }

                break;
            case FieldType.Double:
                WriteFloating(writer, (double)value!, d => writer.WriteNumberValue(d));
                break;
            case FieldType.Float:
                WriteFloating(writer, (float)value!, _ => writer.WriteNumberValue((float)value!));
                break;
            case FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32:
                writer.WriteNumberValue((int)value!);
                break;
            case FieldType.UInt32 or FieldType.Fixed32:
                writer.WriteNumberValue((uint)value!);
                break;
            case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64:
                writer.WriteNumberValue((long)value!);
                break;
            case FieldType.UInt64 or FieldType.Fixed64:
                writer.WriteNumberValue((ulong)value!);
                break;
            default:
                throw new InvalidOperationException($"field {field.FullName} has unsupported type {field.FieldType}");
        }
    }

    private static void WriteFloating(Utf8JsonWriter writer, double value, Action<double> write)
    {
        if (double.IsNaN(value))
        {
            writer.WriteStringValue("NaN");
        }
        else if (double.IsPositiveInfinity(value))
        {
            writer.WriteStringValue("Infinity");
        }
        else if (double.IsNegativeInfinity(value))
        {
            writer.WriteStringValue("-Infinity");
        }
        else
        {
            write(value);
        }
    }

    /// <summary>google/protobuf/*.proto types have their own JSON forms (Timestamp as RFC 3339 text, Any with @type, ...).</summary>
    public static bool IsWellKnown(MessageDescriptor descriptor) =>
        descriptor.File.Package == "google.protobuf" && descriptor.File.Name.StartsWith("google/protobuf/", StringComparison.Ordinal);
}
