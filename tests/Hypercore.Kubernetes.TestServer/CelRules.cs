using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hypercore.Kubernetes.TestServer;

/// <summary>
/// The CRD's <c>x-kubernetes-validations</c> (CEL), checked as far as a tiny evaluator can: expressions over
/// <c>self</c> and <c>oldSelf</c> with field selection, <c>has()</c>, string/number/bool/null literals, <c>==</c>,
/// <c>!=</c>, <c>!</c>, <c>&amp;&amp;</c>, <c>||</c>, parentheses and the <c>list.exists(x, predicate)</c> macro. A rule that mentions <c>oldSelf</c> is a transition
/// rule: checked on update only, and only where the value exists before and after (as the API server does). A rule
/// with anything else (functions such as size() or matches(), macros, arithmetic, comparisons other than equality,
/// indexing, lists) is not checked: it is listed in <see cref="Unchecked"/> so tests can say so.
/// </summary>
public static class CelRules
{
    /// <summary>The rules of <paramref name="schema"/> (anywhere in it) this evaluator cannot check.</summary>
    public static IReadOnlyList<string> Unchecked(JsonObject schema)
    {
        var found = new List<string>();
        Walk(schema, s =>
        {
            foreach (var rule in Rules(s))
            {
                if (!TryParse(rule.Rule, out _))
                {
                    found.Add(rule.Rule);
                }
            }
        });
        return found;
    }

    /// <summary>Errors for every rule the new value breaks; <paramref name="old"/> is null on create.</summary>
    public static IReadOnlyList<SchemaError> Check(JsonNode? value, JsonNode? old, JsonObject schema, string path = "")
    {
        var errors = new List<SchemaError>();
        CheckCore(value, old, schema, path, errors, onUpdate: old is not null);
        return errors;
    }

    private static void CheckCore(JsonNode? value, JsonNode? old, JsonObject schema, string path, List<SchemaError> errors, bool onUpdate)
    {
        if (value is null)
        {
            return;
        }

        foreach (var rule in Rules(schema))
        {
            if (!TryParse(rule.Rule, out var expr))
            {
                continue;
            }

            var transition = rule.Rule.Contains("oldSelf", StringComparison.Ordinal);
            if (transition && (!onUpdate || old is null))
            {
                continue;
            }

            bool ok;
            string message;
            try
            {
                ok = Eval(expr!, value, old) is JsonValue v && v.GetValueKind() == JsonValueKind.True;
                message = rule.Message.Length > 0 ? rule.Message : $"failed rule: {rule.Rule}";
            }
            catch (CelEvalException ex)
            {
                ok = false;
                message = ex.Message;
            }

            if (!ok)
            {
                var field = rule.FieldPath.Length > 0 ? Join(path, rule.FieldPath.TrimStart('.')) : (path.Length == 0 ? "<root>" : path);
                errors.Add(new SchemaError(field, rule.Reason.Length > 0 ? rule.Reason : "FieldValueInvalid",
                    $"Invalid value: \"{KindName(value)}\": {message}"));
            }
        }

        if (value is JsonObject obj && schema["properties"] is JsonObject props)
        {
            foreach (var (name, sub) in props)
            {
                if (sub is JsonObject subSchema && obj[name] is { } child)
                {
                    CheckCore(child, (old as JsonObject)?[name], subSchema, Join(path, name), errors, onUpdate);
                }
            }
        }
    }

    private static string KindName(JsonNode value) => value switch
    {
        JsonObject => "object",
        JsonArray => "array",
        _ => value.GetValueKind() == JsonValueKind.String ? "string" : "value",
    };

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private sealed record RuleSpec(string Rule, string Message, string FieldPath, string Reason);

    private static IEnumerable<RuleSpec> Rules(JsonObject schema) =>
        (schema["x-kubernetes-validations"] as JsonArray ?? []).OfType<JsonObject>().Select(r => new RuleSpec(
            (string?)r["rule"] ?? "", (string?)r["message"] ?? "", (string?)r["fieldPath"] ?? "", (string?)r["reason"] ?? ""));

    private static void Walk(JsonObject schema, Action<JsonObject> visit)
    {
        visit(schema);
        if (schema["properties"] is JsonObject props)
        {
            foreach (var (_, sub) in props)
            {
                if (sub is JsonObject s)
                {
                    Walk(s, visit);
                }
            }
        }

        if (schema["items"] is JsonObject items)
        {
            Walk(items, visit);
        }

        if (schema["additionalProperties"] is JsonObject additional)
        {
            Walk(additional, visit);
        }
    }

    // ---- the evaluator ----

    private abstract record Expr;

    private sealed record Lit(JsonNode? Value) : Expr;

    private sealed record Path(string Root, IReadOnlyList<string> Fields) : Expr;

    private sealed record Has(Path Target) : Expr;

    private sealed record Not(Expr Operand) : Expr;

    private sealed record Binary(string Op, Expr Left, Expr Right) : Expr;

    private sealed record Exists(Path List, string Variable, Expr Predicate) : Expr;

    private sealed class CelEvalException(string message) : Exception(message);

    private static bool TryParse(string text, out Expr? expr)
    {
        try
        {
            var p = new Parser(text);
            expr = p.ParseAll();
            return true;
        }
        catch (FormatException)
        {
            expr = null;
            return false;
        }
    }

    private static JsonNode? Eval(Expr e, JsonNode? self, JsonNode? oldSelf, IReadOnlyDictionary<string, JsonNode?>? vars = null)
    {
        switch (e)
        {
            case Lit l:
                return l.Value?.DeepClone();
            case Path p:
                return Resolve(p, self, oldSelf, forHas: false, vars).Value;
            case Has h:
                return JsonValue.Create(Resolve(h.Target, self, oldSelf, forHas: true, vars).Found);
            case Not n:
                return JsonValue.Create(!Truth(Eval(n.Operand, self, oldSelf, vars)));
            case Binary { Op: "||" } b:
                return JsonValue.Create(Truth(Eval(b.Left, self, oldSelf, vars)) || Truth(Eval(b.Right, self, oldSelf, vars)));
            case Binary { Op: "&&" } b:
                return JsonValue.Create(Truth(Eval(b.Left, self, oldSelf, vars)) && Truth(Eval(b.Right, self, oldSelf, vars)));
            case Binary b:
                var equal = JsonNode.DeepEquals(Eval(b.Left, self, oldSelf, vars), Eval(b.Right, self, oldSelf, vars));
                return JsonValue.Create(b.Op == "==" ? equal : !equal);
            case Exists x:
                if (Resolve(x.List, self, oldSelf, forHas: false, vars).Value is not JsonArray items)
                {
                    throw new CelEvalException("no matching overload: exists() needs a list");
                }

                foreach (var item in items)
                {
                    var scope = new Dictionary<string, JsonNode?>(vars ?? new Dictionary<string, JsonNode?>()) { [x.Variable] = item };
                    if (Truth(Eval(x.Predicate, self, oldSelf, scope)))
                    {
                        return JsonValue.Create(true);
                    }
                }

                return JsonValue.Create(false);
            default:
                throw new CelEvalException("unsupported expression");
        }
    }

    private static bool Truth(JsonNode? v) =>
        v is JsonValue value && value.GetValueKind() is JsonValueKind.True or JsonValueKind.False
            ? value.GetValueKind() == JsonValueKind.True
            : throw new CelEvalException("no matching overload: expected a bool");

    private static (bool Found, JsonNode? Value) Resolve(Path p, JsonNode? self, JsonNode? oldSelf, bool forHas, IReadOnlyDictionary<string, JsonNode?>? vars)
    {
        var current = p.Root switch
        {
            "self" => self,
            "oldSelf" => oldSelf,
            _ => vars is not null && vars.TryGetValue(p.Root, out var bound) ? bound : throw new CelEvalException($"undeclared reference to '{p.Root}'"),
        };
        for (var i = 0; i < p.Fields.Count; i++)
        {
            if (current is not JsonObject o || !o.TryGetPropertyValue(p.Fields[i], out var next))
            {
                if (forHas && i == p.Fields.Count - 1 && current is JsonObject)
                {
                    return (false, null);
                }

                throw new CelEvalException($"no such key: {p.Fields[i]}");
            }

            current = next;
        }

        return (true, current);
    }

    private sealed class Parser(string text)
    {
        private readonly HashSet<string> _bound = new(StringComparer.Ordinal);
        private int _pos;

        public Expr ParseAll()
        {
            var e = Or();
            Skip();
            return _pos == text.Length ? e : throw new FormatException($"unexpected '{text[_pos..]}'");
        }

        private Expr Or()
        {
            var left = And();
            while (Eat("||"))
            {
                left = new Binary("||", left, And());
            }

            return left;
        }

        private Expr And()
        {
            var left = Unary();
            while (Eat("&&"))
            {
                left = new Binary("&&", left, Unary());
            }

            return left;
        }

        private Expr Unary()
        {
            Skip();
            if (_pos < text.Length && text[_pos] == '!' && !(Peek("!=")))
            {
                _pos++;
                return new Not(Unary());
            }

            var left = Primary();
            if (Eat("=="))
            {
                return new Binary("==", left, Primary());
            }

            if (Eat("!="))
            {
                return new Binary("!=", left, Primary());
            }

            return left;
        }

        private Expr Primary()
        {
            Skip();
            if (Eat("("))
            {
                var inner = Or();
                return Eat(")") ? inner : throw new FormatException("expected )");
            }

            if (_pos < text.Length && text[_pos] is '\'' or '"')
            {
                var quote = text[_pos++];
                var end = text.IndexOf(quote, _pos);
                if (end < 0 || text[_pos..end].Contains('\\'))
                {
                    throw new FormatException("unsupported string literal");
                }

                var s = text[_pos..end];
                _pos = end + 1;
                return new Lit(JsonValue.Create(s));
            }

            var start = _pos;
            while (_pos < text.Length && (char.IsLetterOrDigit(text[_pos]) || text[_pos] is '_' or '.' or '-'))
            {
                _pos++;
            }

            var word = text[start.._pos];
            switch (word)
            {
                case "true":
                    return new Lit(JsonValue.Create(true));
                case "false":
                    return new Lit(JsonValue.Create(false));
                case "null":
                    return new Lit(null);
                case "has":
                    if (!Eat("("))
                    {
                        throw new FormatException("expected ( after has");
                    }

                    var target = Primary() as Path ?? throw new FormatException("has() takes a field selection");
                    return Eat(")") && target.Fields.Count > 0 ? new Has(target) : throw new FormatException("bad has()");
            }

            if (word.Length > 0 && long.TryParse(word, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
            {
                return new Lit(JsonValue.Create(n));
            }

            var parts = word.Split('.');
            Skip();
            if (parts.Length > 1 && parts[^1] == "exists" && _pos < text.Length && text[_pos] == '(')
            {
                // list.exists(x, predicate): the one macro the CRD's rules use.
                var list = Term(parts[..^1], receiver: true);
                _pos++;
                Skip();
                var varStart = _pos;
                while (_pos < text.Length && (char.IsLetterOrDigit(text[_pos]) || text[_pos] == '_'))
                {
                    _pos++;
                }

                var variable = text[varStart.._pos];
                if (variable.Length == 0 || !char.IsLetter(variable[0]) || variable is "self" or "oldSelf" || !Eat(","))
                {
                    throw new FormatException("exists() takes a variable and a predicate");
                }

                var added = _bound.Add(variable);
                var predicate = Or();
                if (added)
                {
                    _bound.Remove(variable);
                }

                return Eat(")") ? new Exists(list, variable, predicate) : throw new FormatException("expected ) after exists()");
            }

            return Term(parts);
        }

        private Path Term(string[] parts, bool receiver = false)
        {
            if (!(parts[0] is "self" or "oldSelf" || _bound.Contains(parts[0])) || parts.Skip(1).Any(f => f.Length == 0 || !char.IsLetter(f[0])) ||
                (!receiver && _pos < text.Length && text[_pos] is '(' or '['))
            {
                throw new FormatException($"unsupported term '{string.Join('.', parts)}'");
            }

            return new Path(parts[0], parts[1..]);
        }

        private void Skip()
        {
            while (_pos < text.Length && char.IsWhiteSpace(text[_pos]))
            {
                _pos++;
            }
        }

        private bool Peek(string token) => string.CompareOrdinal(text, _pos, token, 0, token.Length) == 0;

        private bool Eat(string token)
        {
            Skip();
            if (!Peek(token))
            {
                return false;
            }

            _pos += token.Length;
            return true;
        }
    }
}
