using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Benchmarks.Runner;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.Watch;

/// <summary>
/// The watch benchmark's clients, in a process of their own (hidden first argument <c>--watch-clients</c>).
/// Opens and closes a few streams (warm-up), prints <see cref="WarmLine"/> and waits for a line on stdin (the node
/// reads its memory in between), opens N streams, waits until each has its first event, prints
/// <see cref="ReadyLine"/>; then for each of R rounds waits until every stream has seen the change (a Modified event
/// carrying the write's timestamp label) and prints <see cref="RoundLine"/>; at the end one <c>RESULT {json}</c> of the rounds
/// after the first <c>--warm</c> ones.
/// </summary>
public static class WatchClients
{
    public const string Flag = "--watch-clients";
    public const string WarmLine = "WARM";
    public const string ReadyLine = "READY";
    public const string RoundLine = "ROUND";

    public static async Task<int> MainAsync(IReadOnlyList<string> args)
    {
        string? target = null;
        int streams = 0, rounds = 0, warmRounds = 0;
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case Flag: break;
                case "--target": target = Value(); break;
                case "--streams": streams = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--warm": warmRounds = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"watch clients: unknown argument {args[i]}");
            }
        }

        if (target is null || streams <= 0 || rounds <= 0)
        {
            throw new ArgumentException("watch clients: needs --target, --streams N > 0, --rounds R > 0");
        }

        // One channel: Grpc.Net.Client opens another HTTP/2 connection whenever the server's stream limit is reached.
        using var channel = GrpcChannel.ForAddress(target, new GrpcChannelOptions { MaxReceiveMessageSize = 16 << 20 });
        var client = new VMService.VMServiceClient(channel);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(7));

        var warm = Enumerable.Range(0, Math.Min(50, streams)).Select(_ => client.Watch(new WatchMicroVMsRequest { Namespace = "bench" }, cancellationToken: cts.Token)).ToList();
        await Task.WhenAll(warm.Select(w => w.ResponseStream.MoveNext(cts.Token)));
        warm.ForEach(w => w.Dispose());
        await Console.Out.WriteLineAsync(WarmLine);
        await Console.Out.FlushAsync(cts.Token);
        await Console.In.ReadLineAsync(cts.Token);

        var measured = rounds;
        rounds += warmRounds;
        var calls = new AsyncServerStreamingCall<WatchMicroVMsResponse>[streams];
        var latencies = new double[rounds][];
        var arrived = new int[rounds];
        var roundDone = Enumerable.Range(0, rounds).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var opened = new CountdownEvent(streams);
        for (var r = 0; r < rounds; r++)
        {
            latencies[r] = new double[streams];
        }

        var readers = new Task[streams];
        for (var s = 0; s < streams; s++)
        {
            var index = s;
            calls[s] = client.Watch(new WatchMicroVMsRequest { Namespace = "bench" }, cancellationToken: cts.Token);
            readers[s] = Task.Run(async () =>
            {
                var stream = calls[index].ResponseStream;
                if (!await stream.MoveNext(cts.Token))
                {
                    throw new InvalidOperationException("watch ended before its first event");
                }

                opened.Signal();
                for (var round = 0; round < rounds;)
                {
                    if (!await stream.MoveNext(cts.Token))
                    {
                        throw new InvalidOperationException($"watch ended in round {round}");
                    }

                    var now = Stopwatch.GetTimestamp();
                    if (!stream.Current.Microvm.Spec.Labels.TryGetValue(WatchFanOut.StampLabel, out var stamp))
                    {
                        continue;
                    }

                    latencies[round][index] = (now - long.Parse(stamp, CultureInfo.InvariantCulture)) * 1000.0 / Stopwatch.Frequency;
                    if (Interlocked.Increment(ref arrived[round]) == streams)
                    {
                        roundDone[round].TrySetResult();
                    }

                    round++;
                }
            });
        }

        while (!opened.Wait(TimeSpan.FromMilliseconds(50)))
        {
            var failed = readers.FirstOrDefault(t => t.IsFaulted);
            if (failed is not null)
            {
                await failed;
            }
        }

        await Console.Out.WriteLineAsync(ReadyLine);
        await Console.Out.FlushAsync(cts.Token);
        for (var r = 0; r < rounds; r++)
        {
            await roundDone[r].Task.WaitAsync(cts.Token);
            if (r + 1 < rounds)
            {
                await Console.Out.WriteLineAsync(RoundLine);
                await Console.Out.FlushAsync(cts.Token);
            }
        }

        var all = latencies.Skip(warmRounds).SelectMany(l => l).Order().ToArray();
        ChildRun.Report(new Dictionary<string, double>
        {
            ["events"] = all.Length,
            ["missed"] = streams * measured - arrived.Skip(warmRounds).Sum(),
            ["p50_ms"] = Percentile(all, 0.50),
            ["p99_ms"] = Percentile(all, 0.99),
            ["max_ms"] = all.Length == 0 ? double.NaN : all[^1],
        });
        await Console.Out.FlushAsync(cts.Token);
        await Console.In.ReadLineAsync(cts.Token); // the node closes stdin once it has read the result
        foreach (var call in calls)
        {
            call.Dispose();
        }

        return 0;
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
