using System.Collections;
using System.Runtime.CompilerServices;

namespace Hypercore.MicroVms;

/// <summary>
/// A status's conditions, up to <see cref="Capacity"/> of them, as one small object (issue 15, s31): what each condition
/// says apart from its time (type, status, reason, message, generation) is a <see cref="ConditionTemplate"/> shared by
/// every status that says the same, the templates in order are a shape shared the same way, and only the times are the
/// status's own. A running VM's four conditions were four <see cref="Condition"/> objects and their array, ~340 of a
/// record's ~920 bytes, which the informer, the store's caches and the work queue keep for the VM's life and every gen0
/// and gen1 collection copies; they are now one 72-byte object. Measured in bench/NOTES.md (s30: a Running Create cost
/// ~17 % less CPU with no conditions at all; s31: this form).
/// </summary>
/// <remarks>
/// Immutable. Reading an item makes a <see cref="Condition"/> (short-lived; the reply's mapping and the stores' writers
/// read them); <see cref="Conditions.Set"/> and <see cref="Conditions.Find"/> work on the packed form without that. Times
/// are kept as UTC ticks: an item's <see cref="Condition.LastTransitionTime"/> is the instant it was set, in UTC
/// (<see cref="DateTimeOffset"/> equality compares instants, so a condition set with another offset reads back equal).
/// </remarks>
internal sealed class PackedConditions : IReadOnlyList<Condition>
{
    /// <summary>Six: a running VM has four (Admitted, Paused, Ready, Synchronized), one with a readiness probe and an OCI image
    /// six (GuestReady, ImageReady). More are kept as an array of <see cref="Condition"/>.</summary>
    public const int Capacity = 6;

    private readonly ConditionTemplate[] _shape;
    private readonly Times _ticks;

    private PackedConditions(ConditionTemplate[] shape, ReadOnlySpan<long> ticks)
    {
        if (ticks.Length != shape.Length || ticks.Length > Capacity)
        {
            throw new ArgumentException($"{shape.Length} templates and {ticks.Length} times; at most {Capacity}", nameof(ticks));
        }

        _shape = shape;
        ticks.CopyTo(_ticks);
    }

    /// <summary>The conditions' times, UTC ticks, inline in the object.</summary>
    [InlineArray(Capacity)]
    private struct Times
    {
        private long _first;
    }

    public int Count => _shape.Length;

    public Condition this[int index]
    {
        get
        {
            var template = _shape[index]; // throws for an index out of range
            return new Condition(template.Type, template.Status, template.Reason, template.Message, new DateTimeOffset(Ticks(index), TimeSpan.Zero), template.ObservedGeneration);
        }
    }

    internal ConditionTemplate Template(int index) => _shape[index];

    internal long Ticks(int index) => index < _shape.Length ? _ticks[index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The shared shape: the same array for two packs that say the same apart from times.</summary>
    internal ConditionTemplate[] Shape => _shape;

    /// <summary>The first index of <paramref name="type"/>, or -1.</summary>
    internal int IndexOf(string type)
    {
        for (var i = 0; i < _shape.Length; i++)
        {
            if (_shape[i].Type == type)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Sorted by type with no type twice: what <see cref="Conditions.Set"/> would make of it.</summary>
    internal bool IsOrderedOnce()
    {
        for (var i = 1; i < _shape.Length; i++)
        {
            if (string.CompareOrdinal(_shape[i - 1].Type, _shape[i].Type) >= 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Same conditions, times to the tick.</summary>
    internal bool SameAs(PackedConditions other)
    {
        if (_shape.Length != other._shape.Length ||
            !((ReadOnlySpan<long>)_ticks)[.._shape.Length].SequenceEqual(((ReadOnlySpan<long>)other._ticks)[.._shape.Length]))
        {
            return false;
        }

        if (ReferenceEquals(_shape, other._shape))
        {
            return true;
        }

        for (var i = 0; i < _shape.Length; i++)
        {
            if (!_shape[i].Equals(other._shape[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Packs the pairs in their order; at most <see cref="Capacity"/> of them.</summary>
    internal static PackedConditions Of(ReadOnlySpan<ConditionTemplate> templates, ReadOnlySpan<long> ticks) =>
        new(ConditionTemplate.Shape(templates), ticks);

    /// <summary>Packs <paramref name="conditions"/> in their order (at most <see cref="Capacity"/>).</summary>
    internal static PackedConditions Of(IReadOnlyList<Condition> conditions)
    {
        if (conditions.Count > Capacity)
        {
            throw new ArgumentException($"{conditions.Count} conditions; at most {Capacity} are packed", nameof(conditions));
        }

        Span<long> ticks = stackalloc long[Capacity];
        var templates = new ConditionTemplate[conditions.Count]; // the shape's array when no equal one is known // the shape's array when no equal one is known
        for (var i = 0; i < templates.Length; i++)
        {
            var c = conditions[i];
            templates[i] = ConditionTemplate.Of(c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration);
            ticks[i] = c.LastTransitionTime.UtcTicks;
        }

        return new PackedConditions(ConditionTemplate.Shape(templates, templates), ticks[..templates.Length]);
    }

    public IEnumerator<Condition> GetEnumerator()
    {
        for (var i = 0; i < _shape.Length; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// What a condition says apart from its time, shared by every status that says the same (<see cref="Of"/>). Immutable.
/// </summary>
internal sealed class ConditionTemplate : IEquatable<ConditionTemplate>
{
    private const int Ways = 4;
    private const int Sets = 256; // a power of two

    // Set-associative caches, as InterningStringConverter's: a set keeps the last Ways values that hashed to it, most
    // recently used first. Slots hold references to immutable objects, so a race only loses sharing, never correctness:
    // whatever a slot holds is compared with what was asked for before it is returned.
    private static readonly ConditionTemplate?[] Templates = new ConditionTemplate?[Sets * Ways];
    private static readonly ConditionTemplate[]?[] Shapes = new ConditionTemplate[]?[Sets * Ways];

    private ConditionTemplate(string type, ConditionStatus status, string reason, string message, long observedGeneration, int hash)
    {
        Type = type;
        Status = status;
        Reason = reason;
        Message = message;
        ObservedGeneration = observedGeneration;
        Hash = hash;
    }

    public string Type { get; }

    public ConditionStatus Status { get; }

    public string Reason { get; }

    public string Message { get; }

    public long ObservedGeneration { get; }

    private int Hash { get; }

    public bool Says(ConditionStatus status, string reason, string message, long observedGeneration) =>
        Status == status && ObservedGeneration == observedGeneration && Reason == reason && Message == message;

    /// <summary>An equal template made before (the same object), else a new one, remembered.</summary>
    public static ConditionTemplate Of(string type, ConditionStatus status, string reason, string message, long observedGeneration)
    {
        var hash = HashCode.Combine(type, status, reason, message, observedGeneration);
        var set = Templates.AsSpan((hash & (Sets - 1)) * Ways, Ways);
        for (var way = 0; way < Ways; way++)
        {
            var seen = Volatile.Read(ref set[way]);
            if (seen is null)
            {
                break; // the ways fill from the front
            }

            if (seen.Hash == hash && seen.Type == type && seen.Says(status, reason, message, observedGeneration))
            {
                MoveToFront(set, way, seen);
                return seen;
            }
        }

        var made = new ConditionTemplate(type, status, reason, message, observedGeneration, hash);
        MoveToFront(set, Ways - 1, made);
        return made;
    }

    /// <summary>An array holding the same templates made before (shared), else a new one, remembered.</summary>
    public static ConditionTemplate[] Shape(ReadOnlySpan<ConditionTemplate> templates) => Shape(templates, null);

    /// <param name="own">An array with exactly <paramref name="templates"/> that may be kept (no copy is made then).</param>
    public static ConditionTemplate[] Shape(ReadOnlySpan<ConditionTemplate> templates, ConditionTemplate[]? own)
    {
        if (templates.Length == 0)
        {
            return [];
        }

        var hash = templates.Length;
        foreach (var template in templates)
        {
            hash = HashCode.Combine(hash, RuntimeHelpers.GetHashCode(template));
        }

        var set = Shapes.AsSpan((hash & (Sets - 1)) * Ways, Ways);
        for (var way = 0; way < Ways; way++)
        {
            var seen = Volatile.Read(ref set[way]);
            if (seen is null)
            {
                break;
            }

            if (seen.Length == templates.Length && SameObjects(seen, templates))
            {
                MoveToFront(set, way, seen);
                return seen;
            }
        }

        var made = own ?? templates.ToArray();
        MoveToFront(set, Ways - 1, made);
        return made;
    }

    private static bool SameObjects(ConditionTemplate[] seen, ReadOnlySpan<ConditionTemplate> templates)
    {
        for (var i = 0; i < templates.Length; i++)
        {
            if (!ReferenceEquals(seen[i], templates[i]))
            {
                return false;
            }
        }

        return true;
    }

    private static void MoveToFront<T>(Span<T> set, int from, T entry)
        where T : class?
    {
        for (var way = from; way > 0; way--)
        {
            Volatile.Write(ref set[way], set[way - 1]);
        }

        Volatile.Write(ref set[0], entry);
    }

    public bool Equals(ConditionTemplate? other) =>
        other is not null && (ReferenceEquals(this, other) || (Type == other.Type && Says(other.Status, other.Reason, other.Message, other.ObservedGeneration)));

    public override bool Equals(object? obj) => Equals(obj as ConditionTemplate);

    public override int GetHashCode() => Hash;
}
