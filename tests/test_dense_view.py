"""The dense view of structured models: channel maps, the scatter on hand-made layers, and the
same function as the compact model on ResNet-18 for struct_l1, nexp and fold."""

from __future__ import annotations

import pytest
import torch
from conftest import random_bn_model
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.compression.apply import apply_family
from compreps.model.compression.dense_view import (
    axis_map,
    dense_model,
    kept_clusters,
    scatter_module,
)


def test_axis_map_of_pruning_and_folding():
    assert kept_clusters(5, [1, 3]) == [[0], [2], [4]]
    assert axis_map(5, kept_clusters(5, [1, 3])) == [0, -1, 1, -1, 2]
    # clusters {0, 3}, {1}, {2, 4}: compact channels in the order of their smallest members
    assert axis_map(5, [[2, 4], [0, 3], [1]]) == [0, 1, 2, 0, 2]
    with pytest.raises(CompRepsError, match="several"):
        axis_map(3, [[0, 1], [1, 2]])


def test_scatter_of_a_pruned_conv_and_batchnorm():
    compact = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        compact.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 2, 1, 1))
    dense = nn.Conv2d(3, 3, 1, bias=False)
    # out channel 1 removed; in channel 0 removed
    scatter_module(dense, compact, {"out": [0, -1, 1], "in": [-1, 0, 1]})
    expected = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 4.0]])
    assert torch.equal(dense.weight.view(3, 3), expected)

    bn_compact, bn_dense = nn.BatchNorm2d(2), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn_compact.weight.copy_(torch.tensor([2.0, 3.0]))
        bn_compact.bias.copy_(torch.tensor([0.5, -0.5]))
        bn_compact.running_mean.copy_(torch.tensor([1.0, -1.0]))
        bn_compact.running_var.copy_(torch.tensor([4.0, 9.0]))
    scatter_module(bn_dense, bn_compact, {"out": [0, -1, 1]})
    assert bn_dense.weight.tolist() == [2.0, 0.0, 3.0]
    assert bn_dense.bias.tolist() == [0.5, 0.0, -0.5]
    assert bn_dense.running_mean.tolist() == [1.0, 0.0, -1.0]
    assert bn_dense.running_var.tolist() == [4.0, 1.0, 9.0]
    bn_dense.eval()
    # a removed channel is 0 whatever its input
    assert torch.all(bn_dense(torch.randn(4, 3, 2, 2))[:, 1] == 0)


def test_scatter_of_a_fold_unfolds_consumers_by_cluster_size():
    # dense channels 0 and 2 were merged into compact channel 0; channel 1 is compact 1
    producer = nn.Linear(2, 2, bias=True)
    consumer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        producer.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
        producer.bias.copy_(torch.tensor([0.25, -0.75]))
        consumer.weight.copy_(torch.tensor([[6.0, 10.0]]))
    fold = {"out": [0, 1, 0]}
    dense_producer, dense_consumer = nn.Linear(2, 3), nn.Linear(3, 1, bias=False)
    scatter_module(dense_producer, producer, fold)
    scatter_module(dense_consumer, consumer, {"in": [0, 1, 0]})
    assert dense_producer.weight.tolist() == [[1.0, -1.0], [2.0, 0.5], [1.0, -1.0]]
    assert dense_producer.bias.tolist() == [0.25, -0.75, 0.25]
    assert dense_consumer.weight.tolist() == [[3.0, 10.0, 3.0]]  # 6 / 2 for each member
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(dense_consumer(dense_producer(x)), consumer(producer(x)))


def random_batchnorm_model(seed: int) -> nn.Module:
    return random_bn_model(seed).eval()


@pytest.mark.parametrize("method", ["struct_l1", "nexp", "fold"])
def test_dense_view_computes_the_compact_function_in_the_base_shapes(method):
    model = random_batchnorm_model(1)
    dense_shapes = {k: v.shape for k, v in model.state_dict().items()}
    images = torch.randn(40, 3, 16, 16)
    record = apply_family(model, method, 0.5, images, image_size=16)
    view = dense_model(model, "resnet18", 4, 3, 10, record["channel_map"])
    assert {k: v.shape for k, v in view.state_dict().items()} == dense_shapes
    with torch.no_grad():
        torch.testing.assert_close(view(images[:8]), model(images[:8]), rtol=1e-4, atol=1e-5)
    modules = dict(view.named_modules())
    removed = {
        name: [c for c, src in enumerate(axes["out"]) if src < 0]
        for name, axes in record["channel_map"].items()
        if "out" in axes and isinstance(modules[name], nn.Conv2d)
    }
    removed = {name: channels for name, channels in removed.items() if channels}
    if method == "fold":
        assert not removed  # every channel belongs to a cluster
        return
    assert removed
    outputs = {}
    hooks = [
        modules[name].register_forward_hook(lambda m, i, o, name=name: outputs.update({name: o}))
        for name in removed
    ]
    with torch.no_grad():
        view(images[:4])
    for hook in hooks:
        hook.remove()
    for name, channels in removed.items():  # removed filters are 0, so are their outputs
        assert torch.all(modules[name].weight[channels] == 0), name
        assert torch.all(outputs[name][:, channels] == 0), name
