"""Every extension instantiated once; the factory binds them (no circular imports)."""

from typing import TYPE_CHECKING, ClassVar

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from sqlalchemy import Table


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # Every model is mapped to a Table (DeclarativeBase says only FromClause), so
        # Model.__table__.insert() is what it looks like.
        __table__: ClassVar[Table]


db = SQLAlchemy(model_class=Base)
# The base of every model. db.Model is built at run time (Flask-SQLAlchemy's mixins around Base's
# body), which a type checker cannot follow: to mypy each model would subclass Any and every
# attribute, even a misspelt one, would pass. It is told the base is Base, whose Mapped[...]
# columns it understands.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
