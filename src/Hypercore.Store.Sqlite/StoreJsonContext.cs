using System.Text.Json;
using System.Text.Json.Serialization;
using Hypercore.MicroVms;

namespace Hypercore.Store.Sqlite;

/// <summary>
/// The JSON shape of the spec and status columns: camelCase, enums as names (readable with the sqlite3 shell,
/// and stable if enum members are reordered), nulls omitted. Unknown properties are ignored so an older binary
/// can still read rows written by a newer one.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectNullableAnnotations = true)]
[JsonSerializable(typeof(MicroVmSpec))]
[JsonSerializable(typeof(MicroVmStatus))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
