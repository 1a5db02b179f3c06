using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Serialization;

namespace Hypercore.Daemon.Configuration;

/// <summary>
/// Source-generated TOML metadata for the untyped table model (issue 15, cold start / Native AOT): the same parser and
/// table converter as the reflection-based <c>TomlSerializer.Deserialize&lt;TomlTable&gt;(text)</c> it replaces.
/// (The CLI has its own copy for hac.toml: it references no daemon code.)
/// </summary>
[TomlSerializable(typeof(TomlTable))]
internal sealed partial class DaemonTomlContext : TomlSerializerContext
{
    /// <exception cref="TomlException">
    /// not TOML, with the parser's own message ("(line,col) : error : ..."): through a context Tomlyn wraps it in
    /// "Exception while trying to convert TOML value to type ...", which names no line to fix.
    /// </exception>
    public static TomlTable Parse(string toml)
    {
        try
        {
            // The table converter keeps the last of a key defined twice, which TOML forbids and which hides a typo or
            // a merge slip in a settings file. After the parse (whose error messages stay as they were), the syntax
            // parser's validation refuses it, naming both lines.
            var table = TomlSerializer.Deserialize(toml, Default.TomlTable) ?? new TomlTable();
            _ = SyntaxParser.ParseStrict(toml, sourceName: null, validate: true);
            return table;
        }
        catch (TomlException ex) when (ex.InnerException is TomlException)
        {
            Exception cause = ex;
            while (cause.InnerException is TomlException inner)
            {
                cause = inner;
            }

            throw cause;
        }
    }
}
