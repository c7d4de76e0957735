"""Pure data for byokflow: the pipeline spec, gateway wire types, record shapes and their Arrow schemas."""
