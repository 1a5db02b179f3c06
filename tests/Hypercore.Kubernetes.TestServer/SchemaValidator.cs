using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>One validation failure, with Kubernetes' field path and cause type.</summary>
public sealed record SchemaError(string Field, string Type, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>
/// The subset of OpenAPI v3 / JSON Schema that CRD structural schemas and Helm's values.schema.json use: type,
/// properties, required, additionalProperties, items, enum, minimum/maximum, minLength/maxLength, pattern,
/// minItems/maxItems, format date-time, nullable, default, anyOf (value validations only, as structural schemas
/// allow), x-kubernetes-preserve-unknown-fields and x-kubernetes-int-or-string. An unknown keyword that constrains values is refused rather than ignored, so a schema
/// never looks stricter than it is checked.
/// </summary>
public static class SchemaValidator
{
    private static readonly HashSet<string> Known =
    [
        "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "format", "nullable", "default",
        "description", "title", "$schema", "$id", "examples", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
        "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-embedded-resource",
        "anyOf",
        "x-kubernetes-validations", // CEL: checked by CelRules (which lists the rules it cannot evaluate), not here
    ];

    public static IReadOnlyList<SchemaError> Validate(JsonNode? value, JsonObject schema, string path = "")
    {
        var errors = new List<SchemaError>();
        Check(value, schema, path, errors);
        return errors;
    }

    /// <summary>
    /// A schema pattern with the meaning kube-apiserver gives it: it matches with Go's regexp, where <c>$</c> (no
    /// multi-line flag) matches only at the end of the text. In .NET <c>$</c> also matches before a final "\n", so
    /// "aa:bb:cc:dd:ee:ff\n" would pass '^…$' here and be refused by a real API server. Each <c>$</c> outside a character
    /// class and not escaped becomes <c>\z</c>.
    /// </summary>
    public static string GoPattern(string pattern)
    {
        var result = new System.Text.StringBuilder(pattern.Length + 4);
        var inClass = false;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                result.Append(c).Append(pattern[++i]);
                continue;
            }

            if (inClass)
            {
                inClass = c != ']';
                result.Append(c);
                continue;
            }

            if (c == '[')
            {
                inClass = true;
                result.Append(c);
                if (i + 1 < pattern.Length && pattern[i + 1] == '^')
                {
                    result.Append(pattern[++i]);
                }

                if (i + 1 < pattern.Length && pattern[i + 1] == ']')
                {
                    result.Append(pattern[++i]); // a ']' first in a class is a literal
                }

                continue;
            }

            result.Append(c == '$' ? @"\z" : c.ToString());
        }

        return result.ToString();
    }

    /// <summary>Fills in defaults of absent properties, depth first (apiextensions defaulting).</summary>
    public static void ApplyDefaults(JsonNode? node, JsonObject schema)
    {
        switch (node)
        {
            case JsonObject obj:
                if (schema["properties"] is JsonObject props)
                {
                    foreach (var (name, sub) in props)
                    {
                        if (sub is not JsonObject subSchema)
                        {
                            continue;
                        }

                        if (!obj.ContainsKey(name) && subSchema["default"] is { } def)
                        {
                            obj[name] = def.DeepClone();
                        }

                        if (obj[name] is { } child)
                        {
                            ApplyDefaults(child, subSchema);
                        }
                    }
                }
                else if (schema["additionalProperties"] is JsonObject valueSchema)
                {
                    foreach (var (_, child) in obj.ToList())
                    {
                        ApplyDefaults(child, valueSchema);
                    }
                }

                break;
            case JsonArray arr when schema["items"] is JsonObject itemSchema:
                foreach (var item in arr)
                {
                    ApplyDefaults(item, itemSchema);
                }

                break;
        }
    }

    /// <summary>Removes fields the schema does not know (apiextensions pruning) and returns their paths.</summary>
    public static IReadOnlyList<string> Prune(JsonNode? node, JsonObject schema, string path = "", ISet<string>? keepAtRoot = null)
    {
        var removed = new List<string>();
        PruneCore(node, schema, path, removed, keepAtRoot);
        return removed;
    }

    private static void PruneCore(JsonNode? node, JsonObject schema, string path, List<string> removed, ISet<string>? keep)
    {
        if (schema["x-kubernetes-preserve-unknown-fields"] is JsonValue v && v.GetValue<bool>())
        {
            return;
        }

        switch (node)
        {
            case JsonObject obj:
                var props = schema["properties"] as JsonObject;
                var additional = schema["additionalProperties"];
                foreach (var (name, child) in obj.ToList())
                {
                    var childPath = Join(path, name);
                    if (props?[name] is JsonObject sub)
                    {
                        PruneCore(child, sub, childPath, removed, null);
                    }
                    else if (additional is JsonObject valueSchema)
                    {
                        PruneCore(child, valueSchema, childPath, removed, null);
                    }
                    else if (additional is JsonValue allow && allow.GetValue<bool>())
                    {
                    }
                    else if (keep?.Contains(name) != true)
                    {
                        obj.Remove(name);
                        removed.Add(childPath);
                    }
                }

                break;
            case JsonArray arr when schema["items"] is JsonObject itemSchema:
                for (var i = 0; i < arr.Count; i++)
                {
                    PruneCore(arr[i], itemSchema, $"{path}[{i}]", removed, null);
                }

                break;
        }
    }

    private static void Check(JsonNode? value, JsonObject schema, string path, List<SchemaError> errors)
    {
        foreach (var key in schema.Select(kv => kv.Key))
        {
            if (!Known.Contains(key))
            {
                throw new NotSupportedException($"schema keyword \"{key}\" at {Display(path)} is not supported by this validator");
            }
        }

        var field = Display(path);
        if (value is null)
        {
            if (schema["nullable"] is JsonValue n && n.GetValue<bool>())
            {
                return;
            }

            if (!TypeNames(schema).Contains("null") && TypeNames(schema).Count > 0)
            {
                errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: \"null\": {field} in body must be of type {string.Join(",", TypeNames(schema))}: \"null\""));
            }

            return;
        }

        var kind = KindOf(value);
        var types = TypeNames(schema);
        var intOrString = schema["x-kubernetes-int-or-string"] is JsonValue ios && ios.GetValue<bool>();
        if (intOrString ? kind is not ("integer" or "string") : types.Count > 0 && !types.Contains(kind) && !(kind == "integer" && types.Contains("number")))
        {
            errors.Add(new SchemaError(field, "FieldValueTypeInvalid", $"Invalid value: \"{kind}\": {field} in body must be of type {string.Join(",", types)}: \"{kind}\""));
            return;
        }

        if (schema["enum"] is JsonArray allowed && !allowed.Any(a => JsonNode.DeepEquals(a, value)))
        {
            errors.Add(new SchemaError(field, "FieldValueNotSupported",
                $"Unsupported value: {value.ToJsonString()}: supported values: {string.Join(", ", allowed.Select(a => a?.ToJsonString()))}"));
        }

        if (schema["anyOf"] is JsonArray anyOf)
        {
            var branches = anyOf.OfType<JsonObject>().Select(branch =>
            {
                var branchErrors = new List<SchemaError>();
                Check(value, branch, path, branchErrors);
                return branchErrors;
            }).ToList();
            if (branches.Count > 0 && branches.All(b => b.Count > 0))
            {
                errors.Add(new SchemaError(field, "FieldValueInvalid",
                    $"Invalid value: must match at least one of: {string.Join(" | ", branches.Select(b => string.Join(", ", b)))}"));
            }
        }

        switch (value)
        {
            case JsonObject obj:
                if (schema["required"] is JsonArray required)
                {
                    foreach (var name in required.Select(r => (string)r!))
                    {
                        if (!obj.ContainsKey(name))
                        {
                            errors.Add(new SchemaError(Display(Join(path, name)), "FieldValueRequired", "Required value"));
                        }
                    }
                }

                var props = schema["properties"] as JsonObject;
                foreach (var (name, child) in obj)
                {
                    if (props?[name] is JsonObject sub)
                    {
                        Check(child, sub, Join(path, name), errors);
                    }
                    else if (schema["additionalProperties"] is JsonObject valueSchema)
                    {
                        Check(child, valueSchema, Join(path, name), errors);
                    }
                    else if (schema["additionalProperties"] is JsonValue allow && !allow.GetValue<bool>())
                    {
                        errors.Add(new SchemaError(Display(Join(path, name)), "FieldValueNotSupported", "Forbidden: additional property is not allowed"));
                    }
                }

                break;
            case JsonArray arr:
                if (schema["minItems"] is JsonValue minItems && arr.Count < minItems.GetValue<long>())
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: {arr.Count}: {field} in body should have at least {minItems} items"));
                }

                if (schema["maxItems"] is JsonValue maxItems && arr.Count > maxItems.GetValue<long>())
                {
                    errors.Add(new SchemaError(field, "FieldValueTooMany", $"Too many: {arr.Count}: must have at most {maxItems} items"));
                }

                if (schema["items"] is JsonObject itemSchema)
                {
                    for (var i = 0; i < arr.Count; i++)
                    {
                        Check(arr[i], itemSchema, $"{path}[{i}]", errors);
                    }
                }

                break;
            case JsonValue scalar when kind is "integer" or "number":
                var number = scalar.GetValue<double>();
                if (schema["minimum"] is JsonValue min && number < min.GetValue<double>())
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: {scalar.ToJsonString()}: {field} in body should be greater than or equal to {min}"));
                }

                if (schema["maximum"] is JsonValue max && number > max.GetValue<double>())
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: {scalar.ToJsonString()}: {field} in body should be less than or equal to {max}"));
                }

                break;
            case JsonValue scalar when kind == "string":
                var text = scalar.GetValue<string>();
                if (schema["minLength"] is JsonValue minLength && text.Length < minLength.GetValue<long>())
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: \"{text}\": {field} in body should be at least {minLength} chars long"));
                }

                if (schema["maxLength"] is JsonValue maxLength && text.Length > maxLength.GetValue<long>())
                {
                    errors.Add(new SchemaError(field, "FieldValueTooLong", $"Too long: may not be more than {maxLength} bytes"));
                }

                if (schema["pattern"] is JsonValue pattern && !Regex.IsMatch(text, GoPattern(pattern.GetValue<string>()), RegexOptions.None, TimeSpan.FromSeconds(1)))
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: \"{text}\": {field} in body should match '{pattern}'"));
                }

                if ((string?)schema["format"] == "date-time" &&
                    !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out _))
                {
                    errors.Add(new SchemaError(field, "FieldValueInvalid", $"Invalid value: \"{text}\": {field} in body must be of type date-time: \"{text}\""));
                }

                break;
        }
    }

    private static List<string> TypeNames(JsonObject schema) => schema["type"] switch
    {
        JsonArray many => many.Select(t => (string)t!).ToList(),
        JsonValue one => [one.GetValue<string>()],
        _ => [],
    };

    private static string KindOf(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Number => IsWhole(value.AsValue()) ? "integer" : "number",
        _ => "null",
    };

    private static bool IsWhole(JsonValue v) =>
        v.TryGetValue<long>(out _) || (v.TryGetValue<double>(out var d) && Math.Floor(d) == d && !double.IsInfinity(d) && !v.ToJsonString().Contains('.'));

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Display(string path) => path.Length == 0 ? "<root>" : path;
}
