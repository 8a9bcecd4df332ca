"""The artifact: save, load, convert, model card and Hub push/pull of a trained backbone."""
