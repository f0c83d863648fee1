//! ONNX export: the inference graph of a model with its preprocessing inside, as an ONNX model
//! (opset 13, IR version 7) that onnxruntime and other ONNX tools run as they are.
//!
//! Input `input`: raw inputs `(N, input_shape...)` float32 (pixels in [0, 1] for images), output
//! `logits` `(N, classes)`. Group norm has no ONNX operator at opset 13; it is written out in
//! elementary operators (Reshape, ReduceMean, Sub, Mul, Add, Sqrt, Div) as amm computes it.
use super::graph::Node;
use super::onnx_proto::{
    attribute_type, data_type, AttributeProto, DimValue, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, TensorId};
use prost::Message;
use std::collections::HashMap;

/// The opset amm writes.
pub const OPSET: i64 = 13;

/// What [`to_onnx`] needs besides the graph.
pub struct OnnxInput<'a> {
    /// The name of each tensor of the graph (the model's parameter names).
    pub names: &'a HashMap<TensorId, String>,
    pub input_shape: &'a [usize],
    pub classes: usize,
    /// The per-feature mean subtracted from the raw inputs (input shape), if any.
    pub mean: Option<&'a Tensor>,
    /// Written into the model's `metadata_props` (the checkpoint's card).
    pub metadata: &'a HashMap<String, String>,
}

/// The ONNX model's bytes.
pub fn to_onnx(graph: &Node, input: &OnnxInput) -> Result<Vec<u8>> {
    let mut b = Builder { names: input.names, nodes: Vec::new(), init: Vec::new(), count: 0 };
    let mut x = "input".to_string();
    if let Some(mean) = input.mean {
        let m = b.tensor("input_mean", mean, None)?;
        x = b.op("Sub", &[&x, &m], vec![]);
    }
    let mut rank = 1 + input.input_shape.len();
    let logits = b.emit(graph, x, &mut rank)?;
    if rank != 2 {
        bail!("the model's output has rank {rank}, not (N, classes): it cannot be exported");
    }
    // Name the final value `logits` (an Identity keeps the graph valid whatever produced it).
    b.nodes.push(NodeProto {
        input: vec![logits],
        output: vec!["logits".into()],
        name: "logits".into(),
        op_type: "Identity".into(),
        ..Default::default()
    });

    let mut dims = vec![DimValue::Param("N".into())];
    dims.extend(input.input_shape.iter().map(|&d| DimValue::Value(d as i64)));
    let mut metadata: Vec<_> = input.metadata.iter().map(|(k, v)| StringStringEntryProto { key: k.clone(), value: v.clone() }).collect();
    metadata.sort_by(|a, b| a.key.cmp(&b.key));
    let model = ModelProto {
        ir_version: 7,
        producer_name: "amm".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "exported by `amm export`: raw inputs in, logits out; the preprocessing is in the graph".into(),
        graph: Some(GraphProto {
            node: b.nodes,
            name: "amm".into(),
            initializer: b.init,
            doc_string: String::new(),
            input: vec![value_info("input", dims)],
            output: vec![value_info("logits", vec![DimValue::Param("N".into()), DimValue::Value(input.classes as i64)])],
        }),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: metadata,
    };
    Ok(model.encode_to_vec())
}

fn value_info(name: &str, dims: Vec<DimValue>) -> ValueInfoProto {
    let dim = dims.into_iter().map(|d| Dimension { value: Some(d) }).collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: data_type::FLOAT, shape: Some(TensorShapeProto { dim }) }),
        }),
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: attribute_type::INT, ..Default::default() }
}
fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: attribute_type::FLOAT, ..Default::default() }
}

struct Builder<'a> {
    names: &'a HashMap<TensorId, String>,
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    count: usize,
}

impl Builder<'_> {
    /// Adds node `op` on `inputs`; returns its output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        self.count += 1;
        let out = format!("{}_{}", op.to_ascii_lowercase(), self.count);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.into(),
            attribute,
        });
        out
    }

    /// A float32 initializer holding `t` (with `dims` instead of its own shape, if given).
    fn tensor(&mut self, name: &str, t: &Tensor, dims: Option<Vec<usize>>) -> Result<String> {
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let dims = dims.unwrap_or_else(|| t.dims().to_vec());
        self.init.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.into(),
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        });
        Ok(name.into())
    }

    /// The initializer of a model tensor, under its parameter name.
    fn param(&mut self, t: &Tensor, dims: Option<Vec<usize>>) -> Result<String> {
        let name = self.names.get(&t.id()).cloned().context("a tensor of the model is not one of its parameters")?;
        if self.init.iter().any(|i| i.name == name) {
            return Ok(name);
        }
        self.tensor(&name, t, dims)
    }

    fn constant_i64(&mut self, v: &[i64]) -> String {
        self.count += 1;
        let name = format!("const_{}", self.count);
        self.init.push(TensorProto {
            dims: vec![v.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        });
        name
    }

    fn constant_f32(&mut self, v: f32) -> String {
        self.count += 1;
        let name = format!("const_{}", self.count);
        self.init.push(TensorProto { dims: vec![], data_type: data_type::FLOAT, name: name.clone(), raw_data: v.to_le_bytes().to_vec() });
        name
    }

    /// Emits `node` applied to value `x` of rank `rank` (updated); returns the output's name.
    fn emit(&mut self, node: &Node, x: String, rank: &mut usize) -> Result<String> {
        Ok(match node {
            Node::Linear { weight, bias } => {
                if *rank != 2 {
                    bail!("a linear layer on a rank-{rank} value (amm flattens first): cannot export");
                }
                let w = self.param(weight, None)?;
                let mut inputs = vec![x, w];
                if let Some(b) = bias {
                    inputs.push(self.param(b, None)?);
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.op("Gemm", &inputs, vec![int("transB", 1)])
            }
            Node::Conv2d { weight, bias, stride, padding, groups } => {
                let (_, _, kh, kw) = weight.dims4()?;
                let w = self.param(weight, None)?;
                let mut inputs = vec![x, w];
                if let Some(b) = bias {
                    inputs.push(self.param(b, None)?);
                }
                let (s, p) = (*stride as i64, *padding as i64);
                let attrs = vec![
                    ints("kernel_shape", &[kh as i64, kw as i64]),
                    ints("strides", &[s, s]),
                    ints("pads", &[p, p, p, p]),
                    ints("dilations", &[1, 1]),
                    int("group", *groups as i64),
                ];
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.op("Conv", &inputs, attrs)
            }
            Node::MaxPool { k } | Node::AvgPool { k } => {
                let op = if matches!(node, Node::MaxPool { .. }) { "MaxPool" } else { "AveragePool" };
                let k = *k as i64;
                self.op(op, &[&x], vec![ints("kernel_shape", &[k, k]), ints("strides", &[k, k])])
            }
            Node::GlobalAvgPool => {
                let g = self.op("GlobalAveragePool", &[&x], vec![]);
                *rank = 2;
                self.op("Flatten", &[&g], vec![int("axis", 1)])
            }
            Node::GroupNorm { groups, eps, weight, bias } => {
                let c = weight.elem_count();
                let mut cs = vec![c];
                cs.resize(rank.saturating_sub(1).max(1), 1);
                let shape = self.op("Shape", &[&x], vec![]);
                let grouped = self.constant_i64(&[0, *groups as i64, -1]);
                let xg = self.op("Reshape", &[&x, &grouped], vec![]);
                let axes = || vec![ints("axes", &[2]), int("keepdims", 1)];
                let mu = self.op("ReduceMean", &[&xg], axes());
                let xc = self.op("Sub", &[&xg, &mu], vec![]);
                let sq = self.op("Mul", &[&xc, &xc], vec![]);
                let var = self.op("ReduceMean", &[&sq], axes());
                let e = self.constant_f32(*eps as f32);
                let ve = self.op("Add", &[&var, &e], vec![]);
                let sd = self.op("Sqrt", &[&ve], vec![]);
                let xh = self.op("Div", &[&xc, &sd], vec![]);
                let y = self.op("Reshape", &[&xh, &shape], vec![]);
                let g = self.param(weight, Some(cs.clone()))?;
                let b = self.param(bias, Some(cs))?;
                let y = self.op("Mul", &[&y, &g], vec![]);
                self.op("Add", &[&y, &b], vec![])
            }
            Node::BatchNorm { eps, weight, bias, mean, var } => {
                let names = [weight, bias, mean, var].map(|t| self.param(t, None)).into_iter().collect::<Result<Vec<_>>>()?;
                self.op("BatchNormalization", &[&x, &names[0], &names[1], &names[2], &names[3]], vec![float("epsilon", *eps as f32)])
            }
            Node::Relu => self.op("Relu", &[&x], vec![]),
            Node::Tanh => self.op("Tanh", &[&x], vec![]),
            Node::Flatten => {
                *rank = 2;
                self.op("Flatten", &[&x], vec![int("axis", 1)])
            }
            Node::Identity => x,
            Node::Seq(nodes) => {
                let mut h = x;
                for n in nodes {
                    h = self.emit(n, h, rank)?;
                }
                h
            }
            Node::Residual { body, shortcut } => {
                let r0 = *rank;
                let yb = self.emit(body, x.clone(), rank)?;
                let ys = match shortcut {
                    Some(s) => self.emit(s, x, &mut r0.clone())?,
                    None => x,
                };
                self.op("Add", &[&yb, &ys], vec![])
            }
            Node::Concat { body } => {
                let yb = self.emit(body, x.clone(), rank)?;
                self.op("Concat", &[&x, &yb], vec![int("axis", 1)])
            }
        })
    }
}
