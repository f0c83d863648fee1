"""Regenerates the two reference event files next to this script with the Python `tensorboard`
package (pip install tensorboard; made with tensorboard 2.21.0):

  python-simple.tfevents  Summary.Value.simple_value scalars (the classic encoding amm writes)
  python-tensor.tfevents  tensorboard.summary.Writer.add_scalar (scalars stored as tensors)

Usage: python3 make_python_tfevents.py   (then rename the events.out.tfevents.* files it prints)
"""
import glob, os, tempfile
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary import Writer
from tensorboard.summary.writer.event_file_writer import EventFileWriter

d1, d2 = tempfile.mkdtemp(), tempfile.mkdtemp()
w = EventFileWriter(d1)
for step in range(3):
    for tag, v in [("loss", 1.0 / (step + 1)), ("test_error", 0.25 - 0.05 * step)]:
        ev = event_pb2.Event(wall_time=1700000000.0 + step, step=step,
                             summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=v)]))
        w.add_event(ev)
w.close()
w = Writer(d2)
for step in range(3):
    w.add_scalar("margin", 0.5 + 0.125 * step, step=step)
w.flush()
w.close()
print(glob.glob(os.path.join(d1, "*")), "-> python-simple.tfevents")
print(glob.glob(os.path.join(d2, "*")), "-> python-tensor.tfevents")
