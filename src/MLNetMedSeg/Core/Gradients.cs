using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// <c>torch.autograd.grad</c> behind checks. In TorchSharp 0.107 any libtorch error raised inside autograd.grad
/// (an output that does not require grad, an input outside the graph, a non-scalar output without grad_outputs, a
/// graph already freed) terminates the process instead of throwing. Every gradient the library takes with respect to
/// inputs (the attacks, Diff-PGD, WGAN-GP's penalty) goes through <see cref="Grad"/>, which checks each of those
/// conditions first and throws an <see cref="InvalidOperationException"/> (or <see cref="ArgumentException"/> for a bad
/// argument) that names the problem; unused inputs are always allowed natively and reported here. A freed graph is
/// caught where <see cref="Grad"/> freed it itself: a second gradient of the same output object after a call that did
/// not retain the graph, and <c>createGraph</c> with <c>retainGraph: false</c> (a gradient of that gradient would run
/// through the freed graph). A graph freed elsewhere (by <c>backward()</c>, or an output built on top of an output whose
/// graph was freed) cannot be seen from here and still aborts: take every gradient of one graph before freeing it.
/// </summary>
public static class Gradients
{
    // Outputs whose graph a call of Grad freed (retain_graph false): a second gradient through it would abort.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Tensor, object> FreedGraphs = new();
    private static readonly object Freed = new();

    /// <summary>
    /// d<paramref name="output"/>/d<paramref name="inputs"/> for a scalar <paramref name="output"/> (or with
    /// <paramref name="gradOutput"/> of the output's shape). Inputs that the output does not depend on get a zero
    /// gradient when <paramref name="allowUnused"/>, else an error naming them. With <paramref name="createGraph"/> the
    /// gradients are differentiable (second order), and the graph is retained unless <paramref name="retainGraph"/>
    /// says otherwise (PyTorch's default; TorchSharp's default frees it).
    /// </summary>
    public static Tensor[] Grad(Tensor output, IReadOnlyList<Tensor> inputs, Tensor? gradOutput = null,
        bool? retainGraph = null, bool createGraph = false, bool allowUnused = false, string what = "gradient")
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0) throw new ArgumentException($"{what}: no inputs to differentiate with respect to", nameof(inputs));
        if (createGraph && retainGraph == false)
            throw new ArgumentException(
                $"{what}: createGraph with retainGraph: false frees the graph that the returned gradient depends on, so a gradient of it would fail", nameof(retainGraph));
        if (FreedGraphs.TryGetValue(output, out _))
            throw new InvalidOperationException(
                $"{what}: the graph of this output was freed by an earlier gradient of it (pass retainGraph: true to every call but the last)");
        if (!torch.is_grad_enabled())
            throw new InvalidOperationException($"{what}: gradients are disabled here (inside no_grad or inference mode)");
        if (!output.requires_grad)
            throw new InvalidOperationException(
                $"{what}: the output does not depend on anything that requires grad (the network detached it, or it was computed under no_grad)");
        for (int i = 0; i < inputs.Count; i++)
        {
            if (inputs[i] is null) throw new ArgumentNullException(nameof(inputs), $"{what}: input {i} is null");
            if (!inputs[i].requires_grad)
                throw new InvalidOperationException($"{what}: input {i} does not require grad (call requires_grad_() on it before the forward pass)");
        }
        if (gradOutput is null)
        {
            if (output.numel() != 1)
                throw new InvalidOperationException(
                    $"{what}: the output has shape [{string.Join(", ", output.shape)}]; a gradient needs a scalar output or a grad_output of that shape");
            if (output.is_complex())
                throw new InvalidOperationException($"{what}: the output is {output.dtype}; a gradient without grad_output needs a real output");
        }
        else
        {
            if (!gradOutput.shape.SequenceEqual(output.shape))
                throw new ArgumentException($"{what}: grad_output has shape [{string.Join(", ", gradOutput.shape)}], the output [{string.Join(", ", output.shape)}]", nameof(gradOutput));
            if (gradOutput.device_type != output.device_type || gradOutput.device_index != output.device_index || gradOutput.dtype != output.dtype)
                throw new ArgumentException($"{what}: grad_output is {gradOutput.dtype} on {gradOutput.device}, the output {output.dtype} on {output.device}", nameof(gradOutput));
        }
        bool retain = retainGraph ?? createGraph;
        var result = torch.autograd.grad([output], inputs.ToList(), gradOutput is null ? null : [gradOutput],
            retain_graph: retain, create_graph: createGraph, allow_unused: true);
        if (!retain && !output.is_leaf) FreedGraphs.AddOrUpdate(output, Freed);
        var grads = new Tensor[inputs.Count];
        var unused = new List<int>();
        for (int i = 0; i < grads.Length; i++)
        {
            var g = i < result.Count ? result[i] : null;
            if (g is null || g.IsInvalid)
            {
                g?.Dispose();
                unused.Add(i);
                grads[i] = torch.zeros_like(inputs[i]);
            }
            else grads[i] = g;
        }
        if (unused.Count > 0 && !allowUnused)
        {
            foreach (var g in grads) g.Dispose();
            throw new InvalidOperationException($"{what}: the output does not depend on input(s) {string.Join(", ", unused)}");
        }
        return grads;
    }
}
