//! A model as an inference graph: the layers of a [`Network`](crate::Network) in evaluation mode,
//! with their tensors, for the exporters ([`super::onnx`]). Each layer says what it is through
//! [`Layer::graph`](crate::Layer::graph); a layer that cannot say (a plugin's own) makes the model
//! unexportable, with an error that names it.
use candle_core::Tensor;

/// One layer at inference time (dropout is the identity; batch norm uses its running statistics).
#[derive(Clone, Debug)]
pub enum Node {
    /// `y = x Wᵀ + b`, `W` of shape `(out, in)`.
    Linear {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// 2-D convolution, `W` of shape `(out, in/groups, kh, kw)`, zero padding on every side.
    Conv2d {
        weight: Tensor,
        bias: Option<Tensor>,
        stride: usize,
        padding: usize,
        groups: usize,
    },
    /// Max pooling over `k × k` windows with stride `k` (a border that fills no window is dropped).
    MaxPool {
        k: usize,
    },
    /// Average pooling over `k × k` windows with stride `k`.
    AvgPool {
        k: usize,
    },
    /// The mean over all spatial positions: `(N, C, H, W) -> (N, C)`.
    GlobalAvgPool,
    /// Group normalisation (biased variance) with per-channel γ, β.
    GroupNorm {
        groups: usize,
        eps: f64,
        weight: Tensor,
        bias: Tensor,
    },
    /// Batch normalisation with running statistics.
    BatchNorm {
        eps: f64,
        weight: Tensor,
        bias: Tensor,
        mean: Tensor,
        var: Tensor,
    },
    Relu,
    Tanh,
    /// `(N, ...) -> (N, features)`.
    Flatten,
    /// Dropout at inference.
    Identity,
    /// The nodes in order.
    Seq(Vec<Node>),
    /// `body(x) + shortcut(x)`; no shortcut is the identity.
    Residual {
        body: Box<Node>,
        shortcut: Option<Box<Node>>,
    },
    /// `cat([x, body(x)], 1)`: the body's output appended to the input's channels (DenseNet).
    Concat {
        body: Box<Node>,
    },
}

impl Node {
    /// Every tensor the graph holds, in order.
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }
    fn collect<'a>(&'a self, out: &mut Vec<&'a Tensor>) {
        match self {
            Node::Linear { weight, bias } | Node::Conv2d { weight, bias, .. } => {
                out.push(weight);
                out.extend(bias);
            }
            Node::GroupNorm { weight, bias, .. } => out.extend([weight, bias]),
            Node::BatchNorm { weight, bias, mean, var, .. } => out.extend([weight, bias, mean, var]),
            Node::Seq(nodes) => nodes.iter().for_each(|n| n.collect(out)),
            Node::Concat { body } => body.collect(out),
            Node::Residual { body, shortcut } => {
                body.collect(out);
                if let Some(s) = shortcut {
                    s.collect(out);
                }
            }
            Node::MaxPool { .. }
            | Node::AvgPool { .. }
            | Node::GlobalAvgPool
            | Node::Relu
            | Node::Tanh
            | Node::Flatten
            | Node::Identity => {}
        }
    }
}
