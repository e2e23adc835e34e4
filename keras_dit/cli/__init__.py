"""The ``keras-dit`` command line: YAML configs (``config``), config -> objects (``builders``), subcommands
(``commands``) and the entry point ``main``."""

from keras_dit.cli.main import main
