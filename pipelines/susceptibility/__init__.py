"""Regional susceptibility: probability maps zoned into classes, with success and prediction rates."""
